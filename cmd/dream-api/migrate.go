package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
	"github.com/dream-api/dream-api/storage/postgres"
)

// isPostgresURL reports whether s names a PostgreSQL database rather than
// a data dir.
func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// migrate copies a data dir's Pebble store into a PostgreSQL database, or
// a PostgreSQL database into a new data dir.
func migrate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	from := fs.String("from", envOr("DREAM_DATA_DIR", "./data"), "what is copied: a data dir, or a postgres://… URL (no server may be serving it)")
	to := fs.String("to", envOr("DREAM_STORE", ""), "where to: a postgres://… URL of a database without platforms, or a data dir that is new or empty")
	pos, err := parseArgs(fs, args, stdout, "dream-api migrate --from DIR --to postgres://…  |  dream-api migrate --from postgres://… --to DIR",
		"Copies the Pebble store of the data dir DIR into a PostgreSQL database (its schema is made if\n"+
			"absent), for serving with --store; or a PostgreSQL database back into a new data dir, for\n"+
			"serving with --data. Stop the server(s) first: a data dir is locked while it copies, and what\n"+
			"nodes write to the database after the copy started is not copied. The target must be empty:\n"+
			"a database without platforms, a data dir that does not exist or is empty. The master key\n"+
			"goes with the data: nodes on PostgreSQL need DREAM_MASTER_KEY set to DIR's key (DIR/master.key\n"+
			"unless it was served with DREAM_MASTER_KEY); a data dir copied back needs DREAM_MASTER_KEY\n"+
			"set to the nodes' key.",
		[]envVar{{"DREAM_DATA_DIR", "default of --from"}, {"DREAM_STORE", "default of --to"}})
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected arguments %q (see dream-api migrate --help)", pos)
	}
	if *to == "" {
		return errors.New("usage: dream-api migrate --from DIR --to postgres://…, or --from postgres://… --to DIR (see --help)")
	}
	switch fromPG, toPG := isPostgresURL(*from), isPostgresURL(*to); {
	case fromPG && toPG:
		return errors.New("--from and --to are both PostgreSQL databases: copy one into the other with pg_dump and pg_restore")
	case !fromPG && !toPG:
		return errors.New("--from and --to are both data dirs: one of them must be a postgres:// URL (to copy a data dir, use dream-api backup and restore)")
	case fromPG:
		return migrateToDataDir(ctx, *from, *to, stdout)
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

// migrateToDataDir copies the database at url into dir, a data dir that
// does not exist or is empty (made 0700, locked while it copies).
func migrateToDataDir(ctx context.Context, url, dir string, stdout io.Writer) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s is not empty: migrate into a new data dir", dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := prepareDataDir(dir); err != nil {
		return err
	}
	lock, err := lockDataDir(dir)
	if err != nil {
		return err
	}
	defer lock.Release()
	src, err := postgres.Open(ctx, url, nil)
	if err != nil {
		return fmt.Errorf("open the database: %w", err)
	}
	defer src.Close()
	dst, err := storage.Open(filepath.Join(dir, storeDirName), nil)
	if err != nil {
		return fmt.Errorf("make the data dir's store: %w", err)
	}
	n, err := src.CopyTo(ctx, dst, 500)
	if cerr := dst.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copied %d records, then: %w (remove %s before trying again)", n, err, dir)
	}
	fmt.Fprintf(stdout, "Copied %d records from PostgreSQL into %s.\nServe it with: DREAM_MASTER_KEY=<the nodes' master key> dream-api serve --data %s\n", n, dir, dir)
	return nil
}
