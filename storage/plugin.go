package storage

import (
	"bytes"
	"context"

	"github.com/dream-api/dream-api/engine"
)

// PluginSettings returns a tenant's plugin settings, or ENOTFOUND.
func (s *Store) PluginSettings(ctx context.Context, t engine.Tenant) (*engine.PluginSettings, error) {
	var ps *engine.PluginSettings
	found, err := s.get(pluginSettingsKey(t), func(val []byte) error {
		ps = new(engine.PluginSettings)
		return decodeJSON("plugin settings", val, ps)
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No plugin settings for platform %s in %s mode", t.PlatformID, t.Mode)
	}
	return ps, err
}

// PluginVersions lists a tenant's uploaded versions, oldest first (version
// ids sort by upload time).
func (s *Store) PluginVersions(ctx context.Context, t engine.Tenant) ([]*engine.PluginVersion, error) {
	var out []*engine.PluginVersion
	prefix := pluginVersionsPrefix(t)
	err := s.scan(ctx, prefix, prefixEnd(prefix), func(_, val []byte) error {
		v := new(engine.PluginVersion)
		if err := decodeJSON("plugin version", val, v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// PluginModule returns the wasm bytes of a version, or ENOTFOUND.
func (s *Store) PluginModule(ctx context.Context, t engine.Tenant, version string) ([]byte, error) {
	var wasm []byte
	found, err := s.get(pluginModuleKey(t, version), func(val []byte) error {
		p, err := payload("plugin module", val)
		wasm = bytes.Clone(p)
		return err
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No plugin version %s", version)
	}
	return wasm, err
}

// PutPluginVersion stores a version's record and its module.
func (b *batch) PutPluginVersion(t engine.Tenant, v *engine.PluginVersion, wasm []byte) {
	if b.check(t.PlatformID, v.Version) {
		val, err := encodeJSON(v)
		b.setEncoded(pluginVersionKey(t, v.Version), val, err)
		b.set(pluginModuleKey(t, v.Version), append([]byte{formatV1}, wasm...))
	}
}

// DeletePluginVersion removes a version's record and its module.
func (b *batch) DeletePluginVersion(t engine.Tenant, version string) {
	if b.check(t.PlatformID, version) {
		b.delete(pluginVersionKey(t, version))
		b.delete(pluginModuleKey(t, version))
	}
}

// PutPluginSettings stores which version is active and the onError setting.
func (b *batch) PutPluginSettings(t engine.Tenant, ps *engine.PluginSettings) {
	if b.check(t.PlatformID) {
		val, err := encodeJSON(ps)
		b.setEncoded(pluginSettingsKey(t), val, err)
		b.changed(engine.Change{PlatformID: t.PlatformID, Mode: t.Mode, PluginSettings: ps})
	}
}

// HasPolicyState reports whether any customer of the platform, in either
// mode, has plugin state stored.
func (s *Store) HasPolicyState(ctx context.Context, platformID string) (bool, error) {
	prefix := prefixOf(makeKey(prefixPolicyState, platformID))
	found := false
	err := s.scan(ctx, prefix, prefixEnd(prefix), func(_, _ []byte) error {
		found = true
		return errStop
	})
	return found, err
}
