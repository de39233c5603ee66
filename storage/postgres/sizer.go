package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/dream-api/dream-api/engine"
	"github.com/jackc/pgx/v5"
)

// sizeSample is how many of a platform's rows of one table PlatformBytes
// measures; beyond it, the table's share is its row count times their
// average size.
const sizeSample = 1000

// PlatformBytes estimates the bytes a platform's records take
// (engine.StoreSizer, which the StoredBytes quota needs): for every table
// with a platform column (the change log excepted: it is trimmed) and the
// platform's own row, the number of the platform's rows times the average
// size of up to sizeSample of them (pg_column_size of the row, values as
// stored: compressed, TOAST included). Exact (to a byte a row) for tables
// where the platform has at most sizeSample rows, such as plugin modules;
// indexes and dead
// rows are not counted. Cost: an index count per table and at most
// sizeSample rows read from each; the engine calls it at most once a
// minute per platform (engine/quota.go). Tables added by later migrations
// are found by their platform column, so they count without a change here.
func (s *Store) PlatformBytes(ctx context.Context, platformID string) (int64, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	var tables []string
	err := s.reader.each(ctx, `SELECT table_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND column_name = 'platform' AND table_name <> 'changes'
		ORDER BY table_name`, nil, func(rows pgx.Rows) error {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		tables = append(tables, name)
		return nil
	})
	if err != nil {
		return 0, err
	}
	// Each part answers (rows, their average size).
	parts := []string{`SELECT count(*)::bigint, coalesce(avg(pg_column_size(t.*)), 0)::bigint FROM platforms t WHERE id = $1`}
	for _, name := range tables {
		tbl := pgx.Identifier{name}.Sanitize()
		parts = append(parts, fmt.Sprintf(`SELECT (SELECT count(*) FROM %[1]s WHERE platform = $1)::bigint,
			(SELECT coalesce(avg(pg_column_size(t.*)), 0) FROM (SELECT * FROM %[1]s WHERE platform = $1 LIMIT %[2]d) t)::bigint`,
			tbl, sizeSample))
	}
	var total int64
	err = s.reader.each(ctx, strings.Join(parts, "\nUNION ALL\n"), []any{platformID}, func(rows pgx.Rows) error {
		var n, size int64
		if err := rows.Scan(&n, &size); err != nil {
			return err
		}
		total += n * size
		return nil
	})
	if err != nil {
		return 0, err
	}
	return total, nil
}

var _ engine.StoreSizer = (*Store)(nil)
