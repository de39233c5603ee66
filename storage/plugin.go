package storage

import (
	"bytes"
	"context"

	"github.com/dream-api/dream-api/engine"
)

// PluginSettings returns a platform's plugin settings, or ENOTFOUND.
func (s *Store) PluginSettings(ctx context.Context, platformID string) (*engine.PluginSettings, error) {
	var ps *engine.PluginSettings
	found, err := s.get(pluginSettingsKey(platformID), func(val []byte) error {
		ps = new(engine.PluginSettings)
		return decodeJSON("plugin settings", val, ps)
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No plugin settings for platform %s", platformID)
	}
	return ps, err
}

// PluginVersions lists a platform's uploaded versions, oldest first (version
// ids sort by upload time).
func (s *Store) PluginVersions(ctx context.Context, platformID string) ([]*engine.PluginVersion, error) {
	var out []*engine.PluginVersion
	prefix := pluginVersionsPrefix(platformID)
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
func (s *Store) PluginModule(ctx context.Context, platformID, version string) ([]byte, error) {
	var wasm []byte
	found, err := s.get(pluginModuleKey(platformID, version), func(val []byte) error {
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
func (b *batch) PutPluginVersion(platformID string, v *engine.PluginVersion, wasm []byte) {
	if b.check(platformID, v.Version) {
		val, err := encodeJSON(v)
		b.setEncoded(pluginVersionKey(platformID, v.Version), val, err)
		b.set(pluginModuleKey(platformID, v.Version), append([]byte{formatV1}, wasm...))
	}
}

// DeletePluginVersion removes a version's record and its module.
func (b *batch) DeletePluginVersion(platformID, version string) {
	if b.check(platformID, version) {
		b.delete(pluginVersionKey(platformID, version))
		b.delete(pluginModuleKey(platformID, version))
	}
}

// PutPluginSettings stores which version is active and the onError setting.
func (b *batch) PutPluginSettings(platformID string, ps *engine.PluginSettings) {
	if b.check(platformID) {
		val, err := encodeJSON(ps)
		b.setEncoded(pluginSettingsKey(platformID), val, err)
		b.changed(engine.Change{PlatformID: platformID, PluginSettings: ps})
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
