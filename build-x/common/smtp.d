build-x/common/smtp.o: common/smtp.c common/smtp.h common/util.h
common/smtp.h:
common/util.h:
