build-x/common/queue.o: common/queue.c common/queue.h common/util.h \
 common/address.h common/log.h
common/queue.h:
common/util.h:
common/address.h:
common/log.h:
