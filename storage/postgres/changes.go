package postgres

import (
	"encoding/json"
	"fmt"

	"github.com/dream-api/dream-api/engine"
)

// The change log's kinds: one per pointer field of engine.Change.
const (
	kindTiers          = "tiers"
	kindKey            = "key"
	kindPluginSettings = "plugin_settings"
	kindBilling        = "billing"
	kindQuotas         = "quotas"
	kindSigningKey     = "signing_key"
	kindPlatform       = "platform"
)

// objectOf names the object a change is about, for delivery order.
func objectOf(ch engine.Change) string {
	switch {
	case ch.Tiers != nil:
		return fmt.Sprintf("%s\x00%s\x00%d", kindTiers, ch.PlatformID, ch.Mode)
	case ch.Key != nil:
		return kindKey + "\x00" + ch.Key.PlatformID + "\x00" + ch.Key.ID
	case ch.PluginSettings != nil:
		return fmt.Sprintf("%s\x00%s\x00%d", kindPluginSettings, ch.PlatformID, ch.Mode)
	case ch.Billing != nil:
		return kindBilling + "\x00" + ch.PlatformID
	case ch.Quotas != nil:
		return kindQuotas + "\x00" + ch.PlatformID
	case ch.SigningKey != nil:
		return kindSigningKey + "\x00" + ch.SigningKey.ID
	case ch.Platform != nil:
		return kindPlatform + "\x00" + ch.Platform.ID
	}
	return ""
}

// encodeChange returns the kind and payload of a change-log row.
func encodeChange(ch engine.Change) (kind string, payload []byte, err error) {
	var v any
	switch {
	case ch.Tiers != nil:
		kind, v = kindTiers, ch.Tiers
	case ch.Key != nil:
		kind, v = kindKey, keyRecord{Key: *ch.Key, SecretHash: ch.Key.SecretHash[:]}
	case ch.PluginSettings != nil:
		kind, v = kindPluginSettings, ch.PluginSettings
	case ch.Billing != nil:
		kind, v = kindBilling, ch.Billing
	case ch.Quotas != nil:
		kind, v = kindQuotas, ch.Quotas
	case ch.SigningKey != nil:
		kind, v = kindSigningKey, ch.SigningKey
	case ch.Platform != nil:
		kind, v = kindPlatform, ch.Platform
	default:
		return "", nil, fmt.Errorf("postgres: empty change")
	}
	payload, err = json.Marshal(v)
	return kind, payload, err
}

// decodeChange is the inverse of encodeChange.
func decodeChange(kind, platform string, mode engine.Mode, payload []byte) (engine.Change, error) {
	ch := engine.Change{PlatformID: platform, Mode: mode}
	var err error
	switch kind {
	case kindTiers:
		ch.Tiers = new(engine.TierConfig)
		err = json.Unmarshal(payload, ch.Tiers)
	case kindKey:
		ch.Key, err = decodeKey(payload)
	case kindPluginSettings:
		ch.PluginSettings = new(engine.PluginSettings)
		err = json.Unmarshal(payload, ch.PluginSettings)
	case kindBilling:
		ch.Billing = new(engine.PlatformBilling)
		err = json.Unmarshal(payload, ch.Billing)
	case kindQuotas:
		ch.Quotas = new(engine.PlatformQuotas)
		err = json.Unmarshal(payload, ch.Quotas)
	case kindSigningKey:
		ch.SigningKey = new(engine.SigningKey)
		err = json.Unmarshal(payload, ch.SigningKey)
	case kindPlatform:
		ch.Platform = new(engine.Platform)
		err = json.Unmarshal(payload, ch.Platform)
	default:
		err = fmt.Errorf("unknown kind %q", kind)
	}
	return ch, err
}

// keyRecord is a key as stored: engine.Key does not marshal its secret
// hash.
type keyRecord struct {
	engine.Key
	SecretHash []byte `json:"secretHash"`
}

func decodeKey(b []byte) (*engine.Key, error) {
	var r keyRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("postgres: key: %w", err)
	}
	if len(r.SecretHash) != len(r.Key.SecretHash) {
		return nil, fmt.Errorf("postgres: key %s has a %d-byte secret hash", r.ID, len(r.SecretHash))
	}
	copy(r.Key.SecretHash[:], r.SecretHash)
	return &r.Key, nil
}
