package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
	"github.com/dream-api/dream-api/storage/postgres"
)

// migrate copies a data dir's Pebble store into a PostgreSQL database.
func migrate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	from := fs.String("from", envOr("DREAM_DATA_DIR", "./data"), "the data dir whose store is copied (no server may be serving it)")
	to := fs.String("to", envOr("DREAM_STORE", ""), "postgres://… URL of the database to copy into: new, or without platforms")
	pos, err := parseArgs(fs, args, stdout, "dream-api migrate --from DIR --to postgres://…",
		"Copies the Pebble store of the data dir DIR into a PostgreSQL database (its schema is made if\n"+
			"absent), for serving with --store. Stop the server first: the data dir is locked while it\n"+
			"copies. The database must hold no platform yet. Every node then needs DREAM_MASTER_KEY set\n"+
			"to DIR's master key (DIR/master.key unless it was served with DREAM_MASTER_KEY).",
		[]envVar{{"DREAM_DATA_DIR", "default of --from"}, {"DREAM_STORE", "default of --to"}})
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected arguments %q (see dream-api migrate --help)", pos)
	}
	if *to == "" {
		return errors.New("usage: dream-api migrate --from DIR --to postgres://… (see --help)")
	}
	if !strings.HasPrefix(*to, "postgres://") && !strings.HasPrefix(*to, "postgresql://") {
		return errors.New("--to: want a postgres:// URL")
	}
	if err := existingDataDir(*from, true); err != nil {
		return err
	}
	lock, err := lockDataDir(*from)
	if err != nil {
		return err
	}
	defer lock.Release()
	src, err := storage.Open(filepath.Join(*from, storeDirName), &storage.Options{MustExist: true})
	if err != nil {
		return fmt.Errorf("open the data dir's store: %w", err)
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, *to, nil)
	if err != nil {
		return fmt.Errorf("open the database: %w", err)
	}
	defer dst.Close()
	if ps, _, err := dst.Platforms(ctx, engine.Page{Limit: 1}); err != nil {
		return err
	} else if len(ps) > 0 {
		return errors.New("the database already holds platforms: migrate into a new database")
	}
	n, err := src.CopyTo(ctx, dst, 500)
	if err != nil {
		return fmt.Errorf("copied %d records, then: %w (drop the database's tables or use a new database before trying again)", n, err)
	}
	fmt.Fprintf(stdout, "Copied %d records from %s into PostgreSQL.\nServe it with: DREAM_STORE=<the URL> DREAM_MASTER_KEY=<the data dir's master key> dream-api serve\n", n, *from)
	return nil
}
