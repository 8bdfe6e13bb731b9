build-x/common/relay.o: common/relay.c common/relay.h common/address.h \
 common/util.h common/units.h
common/relay.h:
common/address.h:
common/util.h:
common/units.h:
