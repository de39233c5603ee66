package storage

import (
	"testing"

	"github.com/dream-api/dream-api/storage/postgres"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
)

// Pebble → PostgreSQL → Pebble (dream-api migrate both ways): the store
// that comes back holds the very keys and values of the first one, indexes
// included, and each copy counts every record.
func TestCopyToPostgresAndBack(t *testing.T) {
	src := openStore(t, t.TempDir())
	commit(t, src, everyRecord)
	pg, err := postgres.Open(ctx, pgtest.Own(t).Database(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	there, err := src.CopyTo(ctx, pg, 4)
	if err != nil {
		t.Fatalf("Pebble → PostgreSQL: %v", err)
	}
	back := openStore(t, t.TempDir())
	again, err := pg.CopyTo(ctx, back, 4)
	if err != nil {
		t.Fatalf("PostgreSQL → Pebble: %v", err)
	}
	sameDump(t, src, back)
	if there != 44 || again != 44 {
		t.Errorf("copied %d records there and %d back, want 44 each way", there, again)
	}
}
