package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// Every key of the store is built in this file.
//
// A key is a prefix naming the kind of record, then its components, joined by
// sep. Tenant data puts the platform id and the mode right after the prefix,
// so live and test are separate key ranges and one scan never crosses
// tenants:
//
//	meta  schema                                       schema version
//	meta  admin                                        admin token hash
//	plat  <platform>                                   engine.Platform
//	key   <platform> <key id>                          engine.Key
//	ksec  <sha-256, 32 bytes>                          → platform, key id
//	kpub  <publishable key> <platform> <key id>        → platform, key id
//	tier  <platform> <mode>                            engine.TierConfig
//	cus   <platform> <mode> <customer>                 engine.Customer
//	email <platform> <mode> <email, lowercased>        → customer id
//	agg   <platform> <mode>                            engine.Aggregates
//	quota <platform>                                   engine.PlatformQuotas
//	use   <platform> <mode> <customer> <feature> <period start>  engine.Counter
//	pol   <platform> <mode> <customer> <feature>       plugin state
//	idem  <platform> <mode> <idempotency key>          engine.IdemRecord
//	plgs  <platform> <mode>                            engine.PluginSettings
//	plgv  <platform> <mode> <version>                  engine.PluginVersion
//	plgm  <platform> <mode> <version>                  wasm module bytes
//	obx   <outbox entry id>                            engine.OutboxEntry
//	cors  <platform>                                   allowed CORS origins
//	corg  <origin> <platform>                          (empty: the platform allows origin)
//
// Origins are normalized (engine.NormalizeOrigin) and never contain sep,
// so the origin may stand before the platform in corg keys: a scan of
// "corg <origin>" lists exactly the platforms allowing that origin.
//
// The mode is "live" or "test". The period start is 8 bytes, big-endian
// unix milliseconds (see timeKey).
//
// sep is 0x00, which no id, feature or publishable key contains (ids are
// [a-z0-9_], features [a-z0-9_-]); the batch refuses components that do.
// Because sep sorts below every byte that may appear in a component, byte
// order of keys is the string order of their components: a scan of
// "cus <platform> <mode>" lists customers by id, and a scan of a customer's
// "use" range lists counters by feature, then period start. Components that
// are free text (emails, idempotency keys, the hash) only ever come last.
const sep = 0x00

// Key prefixes. None is followed by anything but sep.
const (
	prefixMeta        = "meta"
	prefixPlatform    = "plat"
	prefixKey         = "key"
	prefixKeySecret   = "ksec"
	prefixKeyPub      = "kpub"
	prefixTiers       = "tier"
	prefixCustomer    = "cus"
	prefixEmail       = "email"
	prefixAggregates  = "agg"
	prefixQuotas      = "quota"
	prefixCounter     = "use"
	prefixPolicyState = "pol"
	prefixIdempotency = "idem"
	prefixPluginSet   = "plgs"
	prefixPluginVer   = "plgv"
	prefixPluginMod   = "plgm"
	prefixOutbox      = "obx"
	prefixCORS        = "cors"
	prefixOrigin      = "corg"
)

// errBadComponent is returned when an id would break the key layout.
var errBadComponent = errors.New("storage: id contains a NUL byte")

// checkComponents returns errBadComponent if an id that is not last in its
// key is empty or contains sep.
func checkComponents(parts ...string) error {
	for _, p := range parts {
		if p == "" || strings.IndexByte(p, sep) >= 0 {
			return fmt.Errorf("%w: %q", errBadComponent, p)
		}
	}
	return nil
}

// appendKey appends parts to dst, each followed by sep except the last.
func appendKey(dst []byte, parts ...string) []byte {
	for i, p := range parts {
		if i > 0 {
			dst = append(dst, sep)
		}
		dst = append(dst, p...)
	}
	return dst
}

// makeKey joins parts with sep.
func makeKey(parts ...string) []byte {
	n := len(parts)
	for _, p := range parts {
		n += len(p)
	}
	return appendKey(make([]byte, 0, n), parts...)
}

// prefixOf returns key followed by sep: the lower bound of every key that
// extends key with one more component.
func prefixOf(key []byte) []byte { return append(key, sep) }

// prefixEnd returns the upper bound of the keys that start with prefix. Every
// prefix of this file ends with sep, so the last byte can be incremented.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	end[len(end)-1]++
	return end
}

// after returns the least key greater than key that is not an extension of
// it with a further component: where a page starting after key begins.
func after(key []byte) []byte { return append(key, sep) }

// modePart names a mode in keys.
func modePart(m engine.Mode) string {
	switch m {
	case engine.Live:
		return "live"
	case engine.Test:
		return "test"
	}
	return "mode" + strconv.Itoa(int(m))
}

func schemaKey() []byte     { return makeKey(prefixMeta, "schema") }
func adminTokenKey() []byte { return makeKey(prefixMeta, "admin") }

func platformKey(id string) []byte { return makeKey(prefixPlatform, id) }
func platformsPrefix() []byte      { return prefixOf(makeKey(prefixPlatform)) }

func keyKey(platformID, id string) []byte { return makeKey(prefixKey, platformID, id) }
func keysPrefix(platformID string) []byte { return prefixOf(makeKey(prefixKey, platformID)) }

func secretIndexKey(h [32]byte) []byte {
	return append(prefixOf(makeKey(prefixKeySecret)), h[:]...)
}

func publishableIndexKey(pk, platformID, id string) []byte {
	return makeKey(prefixKeyPub, pk, platformID, id)
}
func publishableIndexPrefix(pk string) []byte { return prefixOf(makeKey(prefixKeyPub, pk)) }

func tiersKey(t engine.Tenant) []byte { return tenantKey(prefixTiers, t) }

// tenantKey is prefix, the tenant's platform and mode, then parts, in one
// allocation.
func tenantKey(prefix string, t engine.Tenant, parts ...string) []byte {
	n := len(prefix) + 1 + len(t.PlatformID) + 1 + len(modePart(t.Mode))
	for _, p := range parts {
		n += 1 + len(p)
	}
	return appendTenantKey(make([]byte, 0, n), prefix, t, parts...)
}

// appendTenantKey is tenantKey appended to dst: with a buffer on the
// caller's stack, a key only looked up costs no allocation.
func appendTenantKey(dst []byte, prefix string, t engine.Tenant, parts ...string) []byte {
	dst = appendKey(dst, prefix, t.PlatformID, modePart(t.Mode))
	for _, p := range parts {
		dst = append(append(dst, sep), p...)
	}
	return dst
}

// keyBuf is a buffer for a key built on the stack (appendTenantKey); a
// longer key moves to the heap as append grows it.
type keyBuf [160]byte

func customerKey(t engine.Tenant, id string) []byte { return tenantKey(prefixCustomer, t, id) }

// appendCustomerKey is customerKey appended to dst.
func appendCustomerKey(dst []byte, t engine.Tenant, id string) []byte {
	return appendTenantKey(dst, prefixCustomer, t, id)
}
func customersPrefix(t engine.Tenant) []byte { return prefixOf(tenantKey(prefixCustomer, t)) }

// emailIndexKey lowercases email: the index is case-insensitive.
func emailIndexKey(t engine.Tenant, email string) []byte {
	return tenantKey(prefixEmail, t, strings.ToLower(email))
}

func aggregatesKey(t engine.Tenant) []byte { return tenantKey(prefixAggregates, t) }

func platformQuotasKey(platformID string) []byte { return makeKey(prefixQuotas, platformID) }

func counterKey(k engine.CounterKey) []byte {
	n := len(prefixCounter) + 1 + len(k.PlatformID) + 1 + len(modePart(k.Mode)) + 1 + len(k.CustomerID) + 1 + len(k.Feature) + 1 + 8
	return appendCounterKey(make([]byte, 0, n), k)
}

// appendCounterKey is counterKey appended to dst.
func appendCounterKey(dst []byte, k engine.CounterKey) []byte {
	dst = appendTenantKey(dst, prefixCounter, k.Tenant, k.CustomerID, k.Feature)
	return binary.BigEndian.AppendUint64(append(dst, sep), timeKey(k.PeriodStart))
}

// countersPrefix is the range of every counter of a customer.
func countersPrefix(t engine.Tenant, customerID string) []byte {
	return prefixOf(tenantKey(prefixCounter, t, customerID))
}

// parseCounterKey splits a key under countersPrefix into its feature and
// period start.
func parseCounterKey(prefix, key []byte) (feature string, start time.Time, err error) {
	rest := key[len(prefix):]
	i := len(rest) - 8 - 1
	if i < 1 || rest[i] != sep {
		return "", time.Time{}, fmt.Errorf("storage: malformed counter key %q", key)
	}
	return string(rest[:i]), timeOfKey(binary.BigEndian.Uint64(rest[i+1:])), nil
}

func policyStateKey(t engine.Tenant, customerID, feature string) []byte {
	return tenantKey(prefixPolicyState, t, customerID, feature)
}

// appendPolicyStateKey is policyStateKey appended to dst.
func appendPolicyStateKey(dst []byte, t engine.Tenant, customerID, feature string) []byte {
	return appendTenantKey(dst, prefixPolicyState, t, customerID, feature)
}

func idempotencyKey(t engine.Tenant, key string) []byte {
	return tenantKey(prefixIdempotency, t, key)
}

func pluginSettingsKey(t engine.Tenant) []byte { return tenantKey(prefixPluginSet, t) }
func pluginVersionKey(t engine.Tenant, version string) []byte {
	return tenantKey(prefixPluginVer, t, version)
}
func pluginVersionsPrefix(t engine.Tenant) []byte {
	return prefixOf(tenantKey(prefixPluginVer, t))
}
func pluginModuleKey(t engine.Tenant, version string) []byte {
	return tenantKey(prefixPluginMod, t, version)
}

// idempotencyPrefix covers every idempotency record of every tenant.
func idempotencyPrefix() []byte { return prefixOf(makeKey(prefixIdempotency)) }

// timeKey encodes t as big-endian unix milliseconds with the sign bit
// flipped, so that keys sort by time, before 1970 included.
func timeKey(t time.Time) uint64 { return uint64(t.UnixMilli()) ^ 1<<63 }

// timeOfKey decodes timeKey.
func timeOfKey(v uint64) time.Time { return time.UnixMilli(int64(v ^ 1<<63)).UTC() }

func outboxKey(id string) []byte { return makeKey(prefixOutbox, id) }

// outboxPrefix covers every outbox entry, in id (creation) order.
func outboxPrefix() []byte { return prefixOf(makeKey(prefixOutbox)) }

func corsKey(platformID string) []byte { return makeKey(prefixCORS, platformID) }

func originIndexKey(origin, platformID string) []byte {
	return makeKey(prefixOrigin, origin, platformID)
}

// originIndexPrefix covers the platforms that allow origin.
func originIndexPrefix(origin string) []byte { return prefixOf(makeKey(prefixOrigin, origin)) }

// Stripe (storage/stripe.go):
//
//	strp  <platform> <mode>                           engine.StripeConnection
//	sacct <stripe account id>                         → platform id (Connect)
//	scat  <platform> <mode>                           engine.StripeCatalog
//	scus  <platform> <mode> <stripe customer id>      → customer id
//	ssub  <platform> <mode> <stripe subscription id>  engine.StripeSubscription
//	sevt  <platform> <mode> <stripe event id>         applied-at time
//	selog <platform> <mode> <slot, two digits>        engine.StripeEventRecord (a ring of the recent events)
//	pbill <platform>                                  engine.PlatformBilling
//
// The operator's own events are recorded under the platform "operator".
const (
	prefixStripeConn    = "strp"
	prefixStripeAccount = "sacct"
	prefixStripeCatalog = "scat"
	prefixStripeCus     = "scus"
	prefixStripeSub     = "ssub"
	prefixStripeEvent   = "sevt"
	prefixStripeLog     = "selog"
	prefixPlatformBill  = "pbill"
)

func stripeConnectionKey(t engine.Tenant) []byte { return tenantKey(prefixStripeConn, t) }
func stripeAccountKey(accountID string) []byte   { return makeKey(prefixStripeAccount, accountID) }
func stripeCatalogKey(t engine.Tenant) []byte    { return tenantKey(prefixStripeCatalog, t) }

func stripeCustomerKey(t engine.Tenant, stripeCustomerID string) []byte {
	return tenantKey(prefixStripeCus, t, stripeCustomerID)
}

func stripeSubscriptionKey(t engine.Tenant, id string) []byte {
	return tenantKey(prefixStripeSub, t, id)
}

func stripeEventKey(t engine.Tenant, eventID string) []byte {
	return tenantKey(prefixStripeEvent, t, eventID)
}

func stripeLogKey(t engine.Tenant, slot int) []byte {
	return tenantKey(prefixStripeLog, t, fmt.Sprintf("%02d", slot))
}

// stripeLogPrefix covers a tenant's log of recent Stripe events.
func stripeLogPrefix(t engine.Tenant) []byte { return prefixOf(tenantKey(prefixStripeLog, t)) }

func platformBillingKey(platformID string) []byte { return makeKey(prefixPlatformBill, platformID) }

// Webhooks (storage/webhooks.go):
//
//	whe   <platform> <mode> <endpoint id>              engine.WebhookEndpoint (sealed secrets inside)
//	whev  <platform> <mode> <event id>                 engine.WebhookEvent
//	whd   <platform> <mode> <endpoint id> <event id>   engine.WebhookDelivery
//	whq   <platform> <mode> <endpoint id> <event id>   (empty: the delivery is pending)
//
// Event ids sort by creation, so an endpoint's deliveries and queue list
// oldest event first.
const (
	prefixWebhookEndpoint = "whe"
	prefixWebhookEvent    = "whev"
	prefixWebhookDelivery = "whd"
	prefixWebhookQueue    = "whq"
)

func webhookEndpointKey(t engine.Tenant, id string) []byte {
	return tenantKey(prefixWebhookEndpoint, t, id)
}
func webhookEndpointsPrefix(t engine.Tenant) []byte {
	return prefixOf(tenantKey(prefixWebhookEndpoint, t))
}
func webhookEventKey(t engine.Tenant, id string) []byte { return tenantKey(prefixWebhookEvent, t, id) }
func webhookDeliveryKey(t engine.Tenant, endpointID, eventID string) []byte {
	return tenantKey(prefixWebhookDelivery, t, endpointID, eventID)
}
func webhookDeliveriesPrefix(t engine.Tenant, endpointID string) []byte {
	return prefixOf(tenantKey(prefixWebhookDelivery, t, endpointID))
}
func webhookQueueKey(t engine.Tenant, endpointID, eventID string) []byte {
	return tenantKey(prefixWebhookQueue, t, endpointID, eventID)
}
func webhookQueuePrefix(t engine.Tenant, endpointID string) []byte {
	return prefixOf(tenantKey(prefixWebhookQueue, t, endpointID))
}

// webhookQueueAll covers the queue of every endpoint of every tenant.
func webhookQueueAll() []byte { return prefixOf(makeKey(prefixWebhookQueue)) }

// parseWebhookQueueKey splits a queue key into its tenant and endpoint.
func parseWebhookQueueKey(key []byte) (engine.WebhookEndpointRef, bool) {
	parts := strings.Split(string(key), string(rune(sep)))
	if len(parts) != 5 || parts[0] != prefixWebhookQueue {
		return engine.WebhookEndpointRef{}, false
	}
	var m engine.Mode
	if m.UnmarshalText([]byte(parts[2])) != nil {
		return engine.WebhookEndpointRef{}, false
	}
	return engine.WebhookEndpointRef{Tenant: engine.Tenant{PlatformID: parts[1], Mode: m}, EndpointID: parts[3]}, true
}

// Developer accounts and dashboard sessions (storage/developers.go):
//
//	dev    <developer id>                 engine.Developer
//	demail <email, lowercased>            → developer id
//	dses   <sha-256 of the token, 32 bytes>  engine.Session
const (
	prefixDeveloper      = "dev"
	prefixDeveloperEmail = "demail"
	prefixSession        = "dses"
)

func developerKey(id string) []byte { return makeKey(prefixDeveloper, id) }

func developerEmailKey(email string) []byte {
	return makeKey(prefixDeveloperEmail, strings.ToLower(email))
}

func sessionKey(h [32]byte) []byte { return append(prefixOf(makeKey(prefixSession)), h[:]...) }

// Daily usage rollups (storage/developers.go):
//
//	uday <platform> <mode> <YYYY-MM-DD> <feature> <shard byte>  engine.DayCount
//
// Dates sort as strings, so a scan from one date to another lists a
// tenant's days in order.
const prefixUsageDay = "uday"

func usageDayKey(k engine.DayKey) []byte {
	mode := modePart(k.Mode)
	b := make([]byte, 0, len(prefixUsageDay)+len(k.PlatformID)+len(mode)+len(k.Date)+len(k.Feature)+6)
	b = appendKey(b, prefixUsageDay, k.PlatformID, mode, k.Date, k.Feature)
	return append(b, sep, k.Shard)
}

// usageDaysRange is the range of t's rollups from the date from to the
// date to, both included.
func usageDaysRange(t engine.Tenant, from, to string) (lower, upper []byte) {
	return prefixOf(tenantKey(prefixUsageDay, t, from)), prefixEnd(prefixOf(tenantKey(prefixUsageDay, t, to)))
}

// parseUsageDayKey splits a key of usageDaysRange.
func parseUsageDayKey(t engine.Tenant, key []byte) (engine.DayKey, error) {
	base := prefixOf(tenantKey(prefixUsageDay, t))
	rest := key[len(base):]
	if len(rest) < len("2006-01-02")+4 || rest[10] != sep || rest[len(rest)-2] != sep {
		return engine.DayKey{}, fmt.Errorf("storage: malformed usage day key %q", key)
	}
	return engine.DayKey{Tenant: t, Date: string(rest[:10]), Feature: string(rest[11 : len(rest)-2]), Shard: rest[len(rest)-1]}, nil
}

// End-user sign-in (storage/auth.go):
//
//	apw   <platform> <mode> <customer>                 engine.CustomerPassword
//	asess <session id>                                 engine.SignInSession
//	acus  <platform> <mode> <customer> <session id>    (empty: the customer's sessions)
//	arst  <reset id>                                   engine.PasswordReset
//	akey  <key id>                                     engine.SigningKey
//
// Sessions and resets are found by the id their tokens carry; only the
// SHA-256 of a token's secret is stored.
const (
	prefixPassword      = "apw"
	prefixSignInSession = "asess"
	prefixCustomerSess  = "acus"
	prefixPasswordReset = "arst"
	prefixSigningKey    = "akey"
)

func passwordKey(t engine.Tenant, customerID string) []byte {
	return tenantKey(prefixPassword, t, customerID)
}
func signInSessionKey(id string) []byte { return makeKey(prefixSignInSession, id) }
func customerSessionKey(t engine.Tenant, customerID, id string) []byte {
	return tenantKey(prefixCustomerSess, t, customerID, id)
}
func customerSessionsPrefix(t engine.Tenant, customerID string) []byte {
	return prefixOf(tenantKey(prefixCustomerSess, t, customerID))
}
func passwordResetKey(id string) []byte { return makeKey(prefixPasswordReset, id) }
func signingKeyKey(id string) []byte    { return makeKey(prefixSigningKey, id) }
func signingKeysPrefix() []byte         { return prefixOf(makeKey(prefixSigningKey)) }
