package storage

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dream-api/dream-api/engine"
)

// schemaVersion is the layout of keys and values this build writes.
const schemaVersion = 3

// A migration brings a store to version from the version before it. It reads
// db and adds its writes to b, which also records the new version and is
// committed only if run succeeds.
type migration struct {
	version uint64
	run     func(db *pebble.DB, b *pebble.Batch) error
}

// migrations are run at Open, in order, on a store older than schemaVersion.
// Version 1 is the first schema and needs none.
var migrations = []migration{
	{version: 2, run: configPerMode},
	{version: 3, run: binaryCustomers},
}

// binaryCustomers (version 3): customers are written in the binary format
// formatCustomerV2 from now on. Records of format 1 stay as they are, and
// are read; the version keeps a build that cannot read format 2 from
// opening the store.
func binaryCustomers(*pebble.DB, *pebble.Batch) error { return nil }

// configPerMode (version 2): tier configs and plugin settings, versions and
// modules were a platform's, shared by both modes; each mode now has its
// own. Each is copied into both modes, so that both go on as before.
func configPerMode(db *pebble.DB, b *pebble.Batch) error {
	for _, prefix := range []string{prefixTiers, prefixPluginSet, prefixPluginVer, prefixPluginMod} {
		lower := prefixOf(makeKey(prefix))
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			// <platform> or <platform> <version>: no mode yet.
			parts := strings.Split(string(it.Key()[len(lower):]), string(rune(sep)))
			t := engine.Tenant{PlatformID: parts[0]}
			for _, m := range []engine.Mode{engine.Live, engine.Test} {
				t.Mode = m
				if err := b.Set(tenantKey(prefix, t, parts[1:]...), it.Value(), nil); err != nil {
					it.Close()
					return err
				}
			}
			if err := b.Delete(it.Key(), nil); err != nil {
				it.Close()
				return err
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	return nil
}

// migrate brings db to version target with ms. A new store is written at
// target directly; a store newer than target is an error.
func migrate(db *pebble.DB, target uint64, ms []migration) error {
	current, err := storedSchema(db)
	if errors.Is(err, pebble.ErrNotFound) {
		return db.Set(schemaKey(), encodeSchema(target), pebble.Sync)
	} else if err != nil {
		return err
	}
	if current > target {
		return fmt.Errorf("storage: schema version %d is newer than this build's %d", current, target)
	}
	for _, m := range ms {
		if m.version <= current || m.version > target {
			continue
		}
		if m.version != current+1 {
			return fmt.Errorf("storage: no migration from schema version %d to %d", current, current+1)
		}
		if err := runMigration(db, m); err != nil {
			return fmt.Errorf("storage: migrate to schema version %d: %w", m.version, err)
		}
		current = m.version
	}
	if current != target {
		return fmt.Errorf("storage: no migration from schema version %d to %d", current, current+1)
	}
	return nil
}

func runMigration(db *pebble.DB, m migration) error {
	b := db.NewBatch()
	defer b.Close()
	if err := m.run(db, b); err != nil {
		return err
	}
	if err := b.Set(schemaKey(), encodeSchema(m.version), nil); err != nil {
		return err
	}
	return db.Apply(b, pebble.Sync)
}

// storedSchema returns the schema version of db, or pebble.ErrNotFound.
func storedSchema(db *pebble.DB) (uint64, error) {
	val, closer, err := db.Get(schemaKey())
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	return decodeSchema(val)
}
