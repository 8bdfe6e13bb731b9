/*
 * providers.c - the table of presets (providers.h): one row per provider,
 * its values as a user would write them in outbox.conf, and its
 * published limits.  The limits were looked up on PROVIDERS_CHECKED;
 * each row says where a figure could not be checked from here.
 *
 * OAuth2 rows use the same endpoints and scopes as `outbox oauth2 login`
 * (oauth2/known.c): Google's token endpoint and https://mail.google.com/;
 * Microsoft's v2.0 endpoint with https://outlook.office.com/SMTP.Send
 * offline_access ("Authenticate an IMAP, POP or SMTP connection using
 * OAuth", learn.microsoft.com), "organizations" for work accounts and
 * "consumers" for Outlook.com.  oauth2_auth_url is not set here: empty,
 * the login derives it from these token URLs (oauth2/known.c), and so
 * the browser login is Google's default and the device flow Microsoft's;
 * oauth2_grant stays refresh_token (client_credentials is a choice of the
 * tenant's administrator, with the tenant's own token URL).
 */
#include "providers.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"

#define GOOGLE_TOKEN "https://oauth2.googleapis.com/token"
#define GOOGLE_SCOPE "https://mail.google.com/"
#define MS_TOKEN(tenant) "https://login.microsoftonline.com/" tenant "/oauth2/v2.0/token"
#define MS_SCOPE "https://outlook.office.com/SMTP.Send offline_access"

#define SMTP_587(h) { "host", h, PV_ALWAYS }, { "port", "587", PV_ALWAYS }, { "tls", "starttls", PV_ALWAYS }
/* a mailbox of Google's or Microsoft's: OAuth2, or (Google) an app password */
#define MAILBOX(host, rate, workers, token, scope) \
	{ SMTP_587(host), { "max_rate", rate, PV_ALWAYS }, { "workers", workers, PV_ALWAYS }, \
	  { "oauth2_token_url", token, PV_OAUTH2 }, { "oauth2_scope", scope, PV_OAUTH2 } }

static const struct provider providers[] = {
	{ "gmail", "Gmail (a consumer Google account)", PL_EITHER, PU_ADDRESS,
	  "Gmail app password (https://myaccount.google.com/apppasswords, with 2-Step Verification on)",
	  NULL,
	  MAILBOX("smtp.gmail.com", "500/d", "2", GOOGLE_TOKEN, GOOGLE_SCOPE),
	  "About 500 messages a day (a rolling 24 hours), 100 recipients per message through "
	  "smtp.gmail.com; over that, Gmail refuses to send for up to a day (550 5.4.5).  Google "
	  "states the consumer figures in its help pages only and changes them without notice.  "
	  "Google publishes no number of connections: workers = 2 is ours." },
	{ "google-workspace", "Google Workspace (a Gmail mailbox of an organization)", PL_EITHER, PU_ADDRESS,
	  "Gmail app password (https://myaccount.google.com/apppasswords, if the administrator allows them)",
	  NULL,
	  MAILBOX("smtp.gmail.com", "2000/d", "2", GOOGLE_TOKEN, GOOGLE_SCOPE),
	  "2000 messages a day per user (a rolling 24 hours; 500 for trial accounts), 10000 "
	  "recipients a day, 100 recipients per message sent through SMTP (Google Workspace Admin "
	  "Help, \"Gmail sending limits in Google Workspace\")." },
	{ "microsoft365", "Microsoft 365 (Exchange Online: work and school accounts)", PL_OAUTH2, PU_ADDRESS,
	  "password", NULL,
	  MAILBOX("smtp.office365.com", "30/m", "3", MS_TOKEN("organizations"), MS_SCOPE),
	  "30 messages a minute, 10000 recipients a day and 3 connections at once per mailbox for "
	  "SMTP AUTH client submission (Exchange Online limits, learn.microsoft.com).  Basic "
	  "authentication for SMTP AUTH is off by default for existing tenants from the end of "
	  "December 2026 (535 5.7.139), its removal announced for the second half of 2027: use "
	  "OAuth2.  SMTP AUTH must be enabled for the mailbox by the tenant's administrator.  An "
	  "unattended server uses an app registration of its tenant: set oauth2_token_url to "
	  "https://login.microsoftonline.com/TENANT/oauth2/v2.0/token." },
	{ "outlook", "Outlook.com (a consumer Microsoft account: outlook.com, hotmail.com, live.com)",
	  PL_OAUTH2, PU_ADDRESS, "password", NULL,
	  MAILBOX("smtp-mail.outlook.com", "300/d", "2", MS_TOKEN("consumers"), MS_SCOPE),
	  "Microsoft requires OAuth2 (modern authentication) for Outlook.com.  Microsoft publishes no "
	  "SMTP figures for consumer accounts that could be found from here; 300 recipients a day "
	  "and 100 per message are the figures commonly cited, and max_rate = 300/d follows them: "
	  "check them with outbox probe and your account's notices." },
	{ "ses", "Amazon SES (SMTP interface)", PL_PASSWORD, PU_ADDRESS,
	  "SES SMTP password (made with the SMTP credentials in the SES console, not the AWS secret key)",
	  "set host = email-smtp.REGION.amazonaws.com, REGION your SES region "
	  "(such as email-smtp.eu-west-1.amazonaws.com)",
	  { { "port", "587", PV_ALWAYS }, { "tls", "starttls", PV_ALWAYS }, { "max_rate", "1/s", PV_ALWAYS } },
	  "Quotas are per region and count recipients: in the sandbox 200 a day and 1 a second, "
	  "to verified addresses only; out of it, what AWS grants the account (the console and "
	  "GetSendQuota show it: raise max_rate to match).  40 MB per message through SMTP "
	  "(\"Service quotas in Amazon SES\").  The user is the SMTP user name of the SMTP "
	  "credentials, not the address." },
	{ "sendgrid", "Twilio SendGrid", PL_PASSWORD, PU_PRESET, "SendGrid API key (Mail Send permission)",
	  NULL,
	  { SMTP_587("smtp.sendgrid.net"), { "user", "apikey", PV_ALWAYS } },
	  "The user is the word apikey and the password an API key (\"Integrating with the SMTP "
	  "API\", twilio.com).  Volume by plan; SendGrid's per-connection limits are on that page "
	  "and could not be read in full from here." },
	{ "mailgun", "Mailgun (US region; EU accounts: host = smtp.eu.mailgun.org)", PL_PASSWORD,
	  PU_ADDRESS, "Mailgun SMTP password of that login", NULL,
	  { SMTP_587("smtp.mailgun.org") },
	  "The user is an SMTP login of the sending domain, such as postmaster@mg.example.org, "
	  "with its SMTP password (documentation.mailgun.com).  Volume by plan, not published as "
	  "one figure." },
	{ "postmark", "Postmark", PL_PASSWORD, PU_SECRET, "Postmark Server API token", NULL,
	  { SMTP_587("smtp.postmarkapp.com") },
	  "The Server API token is both the user and the password (Postmark support, \"What are "
	  "the SMTP details\"); outbox config shows user as (set).  Postmark publishes no sending "
	  "rate; 50 recipients per message is its API's documented limit, not rechecked here." },
	{ "brevo", "Brevo (formerly Sendinblue)", PL_PASSWORD, PU_ADDRESS,
	  "Brevo SMTP key (Settings, SMTP & API: an SMTP key, not an API key)", NULL,
	  { SMTP_587("smtp-relay.brevo.com") },
	  "The user is the SMTP login shown on Brevo's SMTP settings page, which may differ from "
	  "the account's address (developers.brevo.com).  300 messages a day on the free plan "
	  "(as Brevo's pricing page publishes it; not rechecked here), paid plans by volume." },
};

#define NPROVIDERS (sizeof providers / sizeof *providers)

const struct provider *provider_find(const char *name)
{
	for (size_t i = 0; i < NPROVIDERS; i++)
		if (strcmp(providers[i].name, name) == 0)
			return &providers[i];
	return NULL;
}

const struct provider *provider_at(size_t i)
{
	return i < NPROVIDERS ? &providers[i] : NULL;
}

const char *provider_names(void)
{
	return "gmail, google-workspace, microsoft365, outlook, ses, sendgrid, mailgun, postmark, brevo";
}

bool preset_applies(const struct preset_value *v, bool oauth2)
{
	return v->when == PV_ALWAYS || (v->when == PV_OAUTH2) == oauth2;
}
