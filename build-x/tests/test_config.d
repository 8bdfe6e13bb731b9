build-x/tests/test_config: tests/unit/test_config.c tests/unit/unit.h \
 tests/unit/../../common/config.h tests/unit/../../common/relay.h \
 tests/unit/../../common/util.h
tests/unit/unit.h:
tests/unit/../../common/config.h:
tests/unit/../../common/relay.h:
tests/unit/../../common/util.h:
