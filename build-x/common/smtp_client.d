build-x/common/smtp_client.o: common/smtp_client.c common/smtp_client.h \
 common/config.h common/relay.h common/util.h common/net.h common/smtp.h \
 common/auth.h common/log.h
common/smtp_client.h:
common/config.h:
common/relay.h:
common/util.h:
common/net.h:
common/smtp.h:
common/auth.h:
common/log.h:
