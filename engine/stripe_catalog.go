package engine

import (
	"context"
	"fmt"
	"maps"
	"sync"
)

// A tier config becomes Stripe objects per mode: one product per tier and one
// recurring price (a $0 price for free tiers too). Prices are immutable in
// Stripe, so a changed amount, currency or interval makes a new price and
// archives the old one; a renamed tier renames its product; a removed tier's
// product and price are archived. The ids live in the mode's StripeCatalog,
// written in the same batch as the tier config, and are shown on the tiers
// of that mode.

// tierSync is the Stripe side of a tier config change in one mode: the
// catalog to write with the config, and the replaced objects to archive
// once it is durable. A nil *tierSync (Stripe not connected) does nothing.
type tierSync struct {
	s       *Stripe
	t       Tenant
	call    BillingCall
	cat     *StripeCatalog
	changed bool
	// archive once the new catalog is durable; until then the old prices
	// are still what the stored config sells.
	oldPrices, oldProducts []string
	unlock                 func()
}

// syncLock serializes the tier syncs of t across their Stripe calls.
func (s *Stripe) syncLock(t Tenant) func() {
	key := t.PlatformID + "\x00" + t.Mode.String()
	s.syncMu.Lock()
	mu := s.syncing[key]
	if mu == nil {
		mu = new(sync.Mutex)
		s.syncing[key] = mu
	}
	s.syncMu.Unlock()
	mu.Lock()
	return mu.Unlock
}

// syncTiers makes the Stripe products and prices that tc needs in t's mode,
// before tc is written; tc nil means the stored config. It returns nil when
// t has no Stripe connection. The sync holds t's sync lock until release.
// On error nothing was written (objects already made in Stripe stay
// unused) and the lock is released.
func (s *Stripe) syncTiers(ctx context.Context, t Tenant, tc *TierConfig, idem *Idempotency) (*tierSync, error) {
	if s == nil || s.cfg.Billing == nil {
		return nil, nil
	}
	conn, err := s.storedConnection(ctx, t)
	if err != nil || conn == nil {
		return nil, err
	}
	call, err := s.callFor(t, conn)
	if err != nil {
		return nil, err
	}
	unlock := s.syncLock(t)
	ts, err := s.sync(ctx, t, conn, call, tc, idem)
	if err != nil {
		unlock()
		return nil, err
	}
	ts.unlock = unlock
	return ts, nil
}

func (s *Stripe) sync(ctx context.Context, t Tenant, conn *StripeConnection, call BillingCall, tc *TierConfig, idem *Idempotency) (*tierSync, error) {
	cur, err := storedTiers(ctx, s.c.store, t)
	if err != nil {
		return nil, err
	}
	if tc == nil {
		tc = cur
	} else if err := s.c.checkTierRemovals(ctx, t, cur, tc); err != nil {
		// The write would refuse this config: make nothing in Stripe for it.
		return nil, err
	}
	old, err := s.c.store.StripeCatalog(ctx, t)
	if ErrorCode(err) == ENOTFOUND {
		old = &StripeCatalog{}
	} else if err != nil {
		return nil, err
	}
	ts := &tierSync{s: s, t: t, call: call, cat: &StripeCatalog{
		AccountID: conn.AccountID, Tiers: map[string]*StripeTier{}, Prices: maps.Clone(old.Prices),
	}}
	if ts.cat.Prices == nil {
		ts.cat.Prices = map[string]string{}
	}
	if old.AccountID != conn.AccountID {
		// Another account: its objects are not this one's.
		old.Tiers = nil
		ts.changed = true
	}
	for i := range tc.Tiers {
		tier := &tc.Tiers[i]
		var obj StripeTier
		if o := old.Tiers[tier.Name]; o != nil {
			obj = *o
		}
		call := call
		if obj.ProductID == "" {
			call.IdempotencyKey = stripeIdem(t, idem, "product/"+tier.Name)
			id, err := s.cfg.Billing.CreateProduct(ctx, call, ProductInput{Name: tier.DisplayName, Metadata: map[string]string{
				"dreamPlatformId": t.PlatformID, "dreamTier": tier.Name,
			}})
			if err != nil {
				return nil, s.upstream(err)
			}
			obj = StripeTier{ProductID: id, Name: tier.DisplayName}
			ts.changed = true
		} else if obj.Name != tier.DisplayName {
			call.IdempotencyKey = stripeIdem(t, idem, "product-name/"+tier.Name)
			if err := s.cfg.Billing.UpdateProduct(ctx, call, obj.ProductID, ProductInput{Name: tier.DisplayName}); err != nil {
				return nil, s.upstream(err)
			}
			obj.Name = tier.DisplayName
			ts.changed = true
		}
		if !obj.matches(tier) {
			call.IdempotencyKey = stripeIdem(t, idem, fmt.Sprintf("price/%s/%s/%d/%s", tier.Name, obj.ProductID, tier.Price, tier.Interval))
			id, err := s.cfg.Billing.CreatePrice(ctx, call, PriceInput{
				Product: obj.ProductID, Amount: tier.Price, Currency: tier.Currency, Interval: tier.Interval,
				Metadata: map[string]string{"dreamPlatformId": t.PlatformID, "dreamTier": tier.Name},
			})
			if err != nil {
				return nil, s.upstream(err)
			}
			if obj.PriceID != "" {
				ts.oldPrices = append(ts.oldPrices, obj.PriceID)
			}
			obj.PriceID, obj.Amount, obj.Currency, obj.Interval = id, tier.Price, tier.Currency, tier.Interval
			ts.cat.Prices[id] = tier.Name
			ts.changed = true
		}
		ts.cat.Tiers[tier.Name] = &obj
	}
	for name, o := range old.Tiers {
		if tc.Tier(name) == nil {
			ts.oldPrices = append(ts.oldPrices, o.PriceID)
			ts.oldProducts = append(ts.oldProducts, o.ProductID)
			ts.changed = true
		}
	}
	return ts, nil
}

// put adds the catalog to the batch of the tier config.
func (ts *tierSync) put(b Writer) {
	if ts != nil && ts.changed {
		b.PutStripeCatalog(ts.t, ts.cat)
	}
}

// view returns tc with this mode's Stripe ids.
func (ts *tierSync) view(tc *TierConfig) *TierConfig {
	if ts == nil {
		return tc
	}
	return withStripeIDs(tc, ts.cat)
}

// archive archives the replaced prices and removed products. A failure is
// logged: the new config is already in place, an old price merely stays
// purchasable in the Stripe dashboard.
func (ts *tierSync) archive(ctx context.Context) {
	if ts == nil {
		return
	}
	s := ts.s
	for _, id := range ts.oldPrices {
		if id == "" {
			continue
		}
		if err := s.cfg.Billing.ArchivePrice(ctx, ts.call, id); err != nil {
			s.c.log.Warn("archiving a replaced Stripe price failed", "platform", ts.t.PlatformID, "mode", ts.t.Mode, "price", id, "err", err)
		}
	}
	for _, id := range ts.oldProducts {
		if id == "" {
			continue
		}
		if err := s.cfg.Billing.ArchiveProduct(ctx, ts.call, id); err != nil {
			s.c.log.Warn("archiving a removed tier's Stripe product failed", "platform", ts.t.PlatformID, "mode", ts.t.Mode, "product", id, "err", err)
		}
	}
}

// release lets the next sync of the mode go.
func (ts *tierSync) release() {
	if ts != nil && ts.unlock != nil {
		ts.unlock()
		ts.unlock = nil
	}
}

// withStripeIDs returns a copy of tc whose tiers carry cat's ids, where the
// catalog's price was made from the tier as it is now.
func withStripeIDs(tc *TierConfig, cat *StripeCatalog) *TierConfig {
	out := &TierConfig{Tiers: make([]Tier, len(tc.Tiers))}
	copy(out.Tiers, tc.Tiers)
	for i := range out.Tiers {
		t := &out.Tiers[i]
		t.PriceID, t.ProductID = nil, nil
		if st := cat.Tiers[t.Name]; st.matches(t) {
			price, product := st.PriceID, st.ProductID
			t.PriceID, t.ProductID = &price, &product
		}
	}
	return out
}

// checkTierRemovals refuses a config that drops a tier customers are still
// on, as Tiers.Put does: checked before Stripe objects are made for it.
func (c *core) checkTierRemovals(ctx context.Context, t Tenant, cur, tc *TierConfig) error {
	for _, old := range cur.Tiers {
		if tc.Tier(old.Name) != nil {
			continue
		}
		if n, err := customersOnPlan(ctx, c.store, t, old.Name); err != nil {
			return err
		} else if n > 0 {
			return invalid("tiers", "tier %q still has %d customer(s); move them to another plan first", old.Name, n)
		}
	}
	return nil
}

// ForTenant returns a platform's tier config as t sees it: with the Stripe
// product and price ids of t's mode, where they are in step with the tier.
func (s *Tiers) ForTenant(ctx context.Context, t Tenant) (*TierConfig, error) {
	tc, err := s.c.tierConfig(ctx, t)
	if err != nil {
		return nil, err
	}
	st := s.c.stripe
	if st == nil || st.cfg.Billing == nil {
		return tc, nil
	}
	conn, err := st.storedConnection(ctx, t)
	if err != nil || conn == nil {
		return tc, err
	}
	cat, err := s.c.store.StripeCatalog(ctx, t)
	if ErrorCode(err) == ENOTFOUND || (err == nil && cat.AccountID != conn.AccountID) {
		return tc, nil
	} else if err != nil {
		return nil, err
	}
	return withStripeIDs(tc, cat), nil
}

// priceFor returns the Stripe price of tier in t's mode, making the
// catalog's missing or outdated objects first (and writing them) when
// needed.
func (s *Stripe) priceFor(ctx context.Context, t Tenant, tier *Tier) (string, error) {
	cat, err := s.c.store.StripeCatalog(ctx, t)
	if err != nil && ErrorCode(err) != ENOTFOUND {
		return "", err
	}
	conn, _, err := s.connection(ctx, t)
	if err != nil {
		return "", err
	}
	if cat != nil && cat.AccountID == conn.AccountID {
		if st := cat.Tiers[tier.Name]; st.matches(tier) {
			return st.PriceID, nil
		}
	}
	ts, err := s.syncTiers(ctx, t, nil, nil)
	if err != nil {
		return "", err
	}
	defer ts.release()
	if ts == nil {
		return "", Errorf(ESTRIPENOTCONNECTED, "This platform has not connected Stripe in %s mode.", t.Mode)
	}
	_, err = s.c.update(ctx, t, nil, []Lock{tiersLock(t)}, func(b Tx) (any, error) {
		ts.put(b)
		return nil, nil
	})
	if err != nil {
		return "", err
	}
	ts.archive(ctx)
	st := ts.cat.Tiers[tier.Name]
	if !st.matches(tier) {
		// The config changed while we synced: the tier is not what the
		// caller saw.
		return "", Errorf(ECONFLICT, "The tier %q changed meanwhile; retry.", tier.Name)
	}
	return st.PriceID, nil
}
