package postgres_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage/postgres"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
)

// BenchmarkTrack measures POST /api/track's engine path on PostgreSQL: one
// hot customer or one customer per goroutine, on one node or two nodes
// sharing the database, with advisory locks (PostgreSQL's default) or
// lock rows (Options.LockRows, CockroachDB's). Without group commit every
// track is one transaction and one commit.
func BenchmarkTrack(b *testing.B) {
	for _, rows := range []bool{false, true} {
		for _, group := range []bool{false, true} {
			for _, nodes := range []int{1, 2} {
				for _, hot := range []bool{true, false} {
					name := fmt.Sprintf("lockrows=%v/group=%v/nodes=%d/hot=%v", rows, group, nodes, hot)
					b.Run(name, func(b *testing.B) {
						url := pgtest.Database(b)
						var ns []*node
						for i := range nodes {
							ns = append(ns, newNodeB(b, fmt.Sprint(i), url, &postgres.Options{GroupCommit: group, LockRows: rows}))
						}
						np, err := ns[0].eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Bench"}, nil)
						if err != nil {
							b.Fatal(err)
						}
						tenant := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
						if _, err := ns[0].eng.Tiers.Put(ctx, tenant, limitTiers(engine.Unlimited), nil); err != nil {
							b.Fatal(err)
						}
						var ids []string
						for i := range 64 {
							c, err := ns[0].eng.Customers.Create(ctx, tenant, np.PublishableKey, engine.CreateCustomerInput{Email: fmt.Sprintf("b%d@example.com", i)}, nil)
							if err != nil {
								b.Fatal(err)
							}
							ids = append(ids, c.ID)
						}
						var next atomic.Int64
						one := int64(1)
						b.SetParallelism(16)
						b.ResetTimer()
						b.RunParallel(func(pb *testing.PB) {
							g := int(next.Add(1))
							n := ns[g%len(ns)]
							id := ids[0]
							if !hot {
								id = ids[g%len(ids)]
							}
							for pb.Next() {
								if _, err := n.eng.Meter.Track(ctx, tenant, engine.TrackInput{CustomerID: id, Feature: "requests", Quantity: &one}, nil); err != nil {
									b.Error(err)
									return
								}
							}
						})
					})
				}
			}
		}
	}
}
