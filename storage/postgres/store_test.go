package postgres_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage/postgres"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
	"github.com/dream-api/dream-api/storage/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var ctx = context.Background()

// open opens a store on url, closed at the end of t.
func open(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(ctx, url, &postgres.Options{PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The PostgreSQL store passes the store contract's conformance suite.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) engine.Store { return open(t, pgtest.Database(t)) })
}
