build-x/common/headers.o: common/headers.c common/headers.h common/util.h \
 common/address.h
common/headers.h:
common/util.h:
common/address.h:
