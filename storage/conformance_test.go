package storage_test

import (
	"testing"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
	"github.com/dream-api/dream-api/storage/storetest"
)

// The Pebble store passes the store contract's conformance suite.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) engine.Store {
		s, err := storage.Open(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
