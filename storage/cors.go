package storage

import (
	"context"

	"github.com/dream-api/dream-api/engine"
)

// A platform's CORS origins are one record (cors <platform>), plus one
// index entry per origin (corg <origin> <platform>), so that a preflight
// request, which carries no key, can ask whether any platform allows its
// origin.

// AllowedOrigins returns a platform's CORS origins; nil when none were set.
func (s *Store) AllowedOrigins(ctx context.Context, platformID string) ([]string, error) {
	var origins []string
	_, err := s.get(corsKey(platformID), func(val []byte) error {
		return decodeJSON("cors origins", val, &origins)
	})
	return origins, err
}

// OriginAllowedAnywhere reports whether some platform allows origin, or
// allows every origin ("*").
func (s *Store) OriginAllowedAnywhere(ctx context.Context, origin string) (bool, error) {
	for _, o := range []string{origin, engine.AnyOrigin} {
		if checkComponents(o) != nil {
			continue
		}
		found := false
		prefix := originIndexPrefix(o)
		err := s.scan(ctx, prefix, prefixEnd(prefix), func(_, _ []byte) error {
			found = true
			return errStop
		})
		if err != nil || found {
			return found, err
		}
	}
	return false, nil
}

// PutAllowedOrigins replaces a platform's CORS origins and their index
// entries; prev are the origins stored before.
func (b *batch) PutAllowedOrigins(platformID string, origins, prev []string) {
	if !b.check(platformID) || !b.check(origins...) {
		return
	}
	val, err := encodeJSON(origins)
	b.setEncoded(corsKey(platformID), val, err)
	for _, o := range prev {
		if checkComponents(o) == nil {
			b.delete(originIndexKey(o, platformID))
		}
	}
	for _, o := range origins {
		b.set(originIndexKey(o, platformID), encodeBytes(nil))
	}
}
