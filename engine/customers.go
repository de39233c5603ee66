package engine

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/mail"
	"strings"
	"unicode/utf8"
)

// Limits on customer input.
const (
	MaxMetadataKeys     = 50
	MaxMetadataKeyLen   = 40
	MaxMetadataValueLen = 500 // bytes of the value's JSON
	maxNameLen          = 100
	maxEmailLen         = 254
)

// Customers manages a platform's customers.
type Customers struct {
	c *core
}

// CreateCustomerInput is the body of POST /api/customers.
type CreateCustomerInput struct {
	Email     string         `json:"email"`
	FirstName string         `json:"firstName"`
	LastName  string         `json:"lastName"`
	Plan      string         `json:"plan"`
	Password  string         `json:"password"` // Clerk's, or hashed with argon2id (auth.go); never stored in clear
	Metadata  map[string]any `json:"metadata"`
	// ClerkUserID links an existing Clerk user instead of creating one
	// (with Clerk configured only); email and names default to the user's.
	ClerkUserID string `json:"clerkUserId"`
}

// Validate reports every problem of in that needs no lookup.
func (in *CreateCustomerInput) Validate() error {
	var v Validation
	if in.Email == "" {
		if in.ClerkUserID == "" {
			v.Add("email", "is required")
		}
	} else if e, err := normalizeEmail(in.Email); err != nil {
		v.Add("email", "%s", err)
	} else {
		in.Email = e
	}
	validateName(&v, "firstName", in.FirstName)
	validateName(&v, "lastName", in.LastName)
	validateMetadata(&v, in.Metadata)
	return v.Err()
}

// UpdateCustomerInput is the body of PATCH /api/customers/{id}. Absent
// fields are left as they are; metadata merges, and a key set to null is
// removed.
type UpdateCustomerInput struct {
	Email     *string        `json:"email"`
	FirstName *string        `json:"firstName"`
	LastName  *string        `json:"lastName"`
	Plan      *string        `json:"plan"`
	Metadata  map[string]any `json:"metadata"`
	// Source names the caller in customer.plan_changed webhooks
	// (SourceDashboard); not part of the body. Defaults to SourceAPI.
	Source string `json:"-"`
	// Password sets a new password (dream-api's own sign-in only); the
	// customer's sessions end.
	Password *string `json:"password"`
}

// Validate reports every problem of in that needs no lookup.
func (in *UpdateCustomerInput) Validate() error {
	var v Validation
	if in.Email != nil {
		if e, err := normalizeEmail(*in.Email); err != nil {
			v.Add("email", "%s", err)
		} else {
			in.Email = &e
		}
	}
	if in.FirstName != nil {
		validateName(&v, "firstName", *in.FirstName)
	}
	if in.LastName != nil {
		validateName(&v, "lastName", *in.LastName)
	}
	if in.Plan != nil && *in.Plan == "" {
		v.Add("plan", "must not be empty")
	}
	validateMetadata(&v, in.Metadata)
	return v.Err()
}

func normalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxEmailLen {
		return "", fmt.Errorf("must be at most %d characters", maxEmailLen)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" || !strings.Contains(s[strings.LastIndexByte(s, '@')+1:], ".") {
		return "", fmt.Errorf("is not a valid email address")
	}
	return strings.ToLower(s), nil
}

func validateName(v *Validation, field, s string) {
	if utf8.RuneCountInString(s) > maxNameLen {
		v.Add(field, "must be at most %d characters", maxNameLen)
	}
	if !utf8.ValidString(s) {
		v.Add(field, "must be valid UTF-8")
	}
}

func validateMetadata(v *Validation, md map[string]any) {
	if len(md) > MaxMetadataKeys {
		v.Add("metadata", "at most %d keys", MaxMetadataKeys)
		return
	}
	for k, val := range md {
		if k == "" || len(k) > MaxMetadataKeyLen {
			v.Add("metadata", "keys must be 1 to %d characters", MaxMetadataKeyLen)
			continue
		}
		if b, _ := json.Marshal(val); len(b) > MaxMetadataValueLen {
			v.Add("metadata."+k, "value must be at most %d bytes of JSON", MaxMetadataValueLen)
		}
	}
}

// Create makes a customer in t. Returns EVALIDATION for a bad input or an
// unknown plan and ECONFLICT when the email is taken in t.
func (s *Customers) Create(ctx context.Context, t Tenant, pk string, in CreateCustomerInput, idem *Idempotency) (*Customer, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	if in.Password != "" {
		s.c.secretRequest(idem) // no fast hash of a password in the record
	}
	// A replay answers before any state is read: the tiers or Clerk may
	// have changed since the first call.
	done, err := s.c.idempotent(ctx, t, idem)
	if err != nil {
		return nil, err
	}
	defer done()
	tc, err := s.c.tierConfig(ctx, t)
	if err != nil {
		return nil, err
	}
	if in.Plan == "" {
		in.Plan = "free"
		if tc.Tier("free") == nil {
			in.Plan = tc.Tiers[0].Name
		}
	}
	if tc.Tier(in.Plan) == nil {
		return nil, invalid("plan", "no tier named %q", in.Plan)
	}
	if s.c.identity != nil {
		return s.createWithIdentity(ctx, t, pk, in, idem)
	} else if in.ClerkUserID != "" {
		return nil, Errorf(ECLERKNOTCONFIGURED, "clerkUserId needs Clerk: the server has no CLERK_SECRET_KEY.")
	}
	pw, err := s.c.auth.passwordForCreate(in.Password) // argon2id: outside the locks
	if err != nil {
		return nil, err
	}
	// A taken email is refused before the locks, and looking it up here
	// brings the blocks the check under the locks reads into the cache:
	// on a large store that read, not the write, is what a create spends
	// most, and all of a tenant's creates take its tier lock.
	if _, err := s.c.store.CustomerIDByEmail(ctx, t, in.Email); err == nil {
		return nil, Errorf(ECONFLICT, "A customer with email %s already exists.", in.Email)
	} else if ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	now := s.c.now().UTC()
	res, err := s.c.updateClaimed(ctx, t, idem, []Lock{emailLock(t, in.Email), tiersLock(t)}, func(b Tx) (any, error) {
		if err := s.c.planExists(ctx, b, t, in.Plan); err != nil {
			return nil, err
		}
		if _, err := b.CustomerIDByEmail(ctx, t, in.Email); err == nil {
			return nil, Errorf(ECONFLICT, "A customer with email %s already exists.", in.Email)
		} else if ErrorCode(err) != ENOTFOUND {
			return nil, err
		}
		md := in.Metadata
		if md == nil {
			md = map[string]any{}
		}
		c := &Customer{
			ID: NewID("cus_", now), Email: in.Email, FirstName: in.FirstName, LastName: in.LastName,
			Plan: in.Plan, PublishableKey: pk, Metadata: md, CreatedAt: now,
		}
		if err := s.c.customerAdded(ctx, b, t, c); err != nil { // quota.go: the customers quota, the aggregates
			return nil, err
		}
		b.PutCustomer(t, c, "")
		if pw != nil {
			b.PutCustomerPassword(t, c.ID, pw)
		}
		if err := s.c.customerEvent(ctx, b, t, EventCustomerCreated, c); err != nil {
			return nil, err
		}
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*Customer), nil
}

// planExists checks, in a unit of work holding the tier lock, that plan is
// a tier of the platform's stored config. On a store no other process
// writes, the in-memory config is that config: every change of it is
// applied, and the memory updated, under the tier lock the caller holds.
// That spares every create a read and decode of the config under the lock
// all of a tenant's creates take. Another process's change is seen only
// through tx.
func (c *core) planExists(ctx context.Context, tx Tx, t Tenant, plan string) error {
	var tc *TierConfig
	var err error
	if shared(c.store) {
		tc, err = storedTiers(ctx, tx, t)
	} else {
		tc, err = c.tierConfig(ctx, t)
	}
	if err != nil {
		return err
	}
	if tc.Tier(plan) == nil {
		return invalid("plan", "no tier named %q", plan)
	}
	return nil
}

// Get returns a customer of t, or ENOTFOUND.
func (s *Customers) Get(ctx context.Context, t Tenant, id string) (*Customer, error) {
	return customerIn(ctx, s.c.store, t, id)
}

// customerIn reads a customer of t through r (a unit of work, or the
// store). Returns ENOTFOUND.
func customerIn(ctx context.Context, r Reader, t Tenant, id string) (*Customer, error) {
	if id == "" || len(id) > 100 {
		return nil, Errorf(ENOTFOUND, "No customer %q.", id)
	}
	c, err := r.Customer(ctx, t, id)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(ENOTFOUND, "No customer %q.", id)
	}
	return c, err
}

// List returns a page of t's customers, oldest first; with email set, the
// customer with that email, if any.
func (s *Customers) List(ctx context.Context, t Tenant, p Page, email string) ([]*Customer, bool, error) {
	if err := p.validate(); err != nil {
		return nil, false, err
	}
	if email != "" {
		e, err := normalizeEmail(email)
		if err != nil {
			return []*Customer{}, false, nil
		}
		id, err := s.c.store.CustomerIDByEmail(ctx, t, e)
		if ErrorCode(err) == ENOTFOUND {
			return []*Customer{}, false, nil
		} else if err != nil {
			return nil, false, err
		}
		c, err := s.c.store.Customer(ctx, t, id)
		if err != nil {
			return nil, false, err
		}
		return []*Customer{c}, false, nil
	}
	cs, more, err := s.c.store.Customers(ctx, t, p)
	if cs == nil && err == nil {
		cs = []*Customer{}
	}
	return cs, more, err
}

// Update changes a customer's profile, plan or metadata. Returns ENOTFOUND,
// EVALIDATION (bad input, unknown plan) or ECONFLICT (email taken).
func (s *Customers) Update(ctx context.Context, t Tenant, id string, in UpdateCustomerInput, idem *Idempotency) (*Customer, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	if in.Plan != nil {
		tc, err := s.c.tierConfig(ctx, t)
		if err != nil {
			return nil, err
		}
		if tc.Tier(*in.Plan) == nil {
			return nil, invalid("plan", "no tier named %q", *in.Plan)
		}
	}
	pw, err := s.c.auth.passwordForUpdate(in.Password) // argon2id: outside the locks
	if err != nil {
		return nil, err
	}
	locks := []Lock{customerLock(t, id)}
	if in.Email != nil {
		locks = append(locks, emailLock(t, *in.Email))
	}
	if in.Plan != nil {
		locks = append(locks, tiersLock(t))
	}
	res, err := s.c.update(ctx, t, idem, locks, func(b Tx) (any, error) {
		c, err := customerIn(ctx, b, t, id)
		if err != nil {
			return nil, err
		}
		if in.Plan != nil && *in.Plan != c.Plan {
			if err := s.c.planExists(ctx, b, t, *in.Plan); err != nil {
				return nil, err
			}
		}
		prevEmail := c.Email
		if in.Email != nil && *in.Email != c.Email {
			if _, err := b.CustomerIDByEmail(ctx, t, *in.Email); err == nil {
				return nil, Errorf(ECONFLICT, "A customer with email %s already exists.", *in.Email)
			} else if ErrorCode(err) != ENOTFOUND {
				return nil, err
			}
			c.Email = *in.Email
		}
		if in.FirstName != nil {
			c.FirstName = *in.FirstName
		}
		if in.LastName != nil {
			c.LastName = *in.LastName
		}
		prevPlan, before := c.Plan, shareOf(c)
		if in.Plan != nil {
			c.Plan = *in.Plan
		}
		if c.Metadata == nil {
			c.Metadata = map[string]any{}
		}
		for k, v := range in.Metadata {
			if v == nil {
				delete(c.Metadata, k)
			} else {
				c.Metadata[k] = v
			}
		}
		if len(c.Metadata) > MaxMetadataKeys {
			return nil, invalid("metadata", "at most %d keys after the merge", MaxMetadataKeys)
		}
		b.PutCustomer(t, c, prevEmail)
		if pw != nil {
			b.PutCustomerPassword(t, c.ID, pw)
			if _, err := revokeSessions(ctx, b, t, c.ID); err != nil {
				return nil, err
			}
		}
		if c.Plan != prevPlan {
			// Under the tier lock (in.Plan is set): stats.go's aggregates.
			if err := adjustAggregates(ctx, b, t, before, shareOf(c)); err != nil {
				return nil, err
			}
			if err := s.c.planChanged(ctx, b, t, c, prevPlan, cmp.Or(in.Source, SourceAPI)); err != nil {
				return nil, err
			}
		}
		if err := s.c.customerEvent(ctx, b, t, EventCustomerUpdated, c); err != nil {
			return nil, err
		}
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*Customer), nil
}

// planChanged is called, in the batch that changes it, whenever a
// customer's plan changes (PATCH, Stripe webhooks), so that integrations
// can add their own writes (e.g. an outbox record) to the same batch.
// source says who changed it (SourceAPI, SourceStripe, SourceDashboard).
func (c *core) planChanged(ctx context.Context, b Tx, t Tenant, cus *Customer, prevPlan, source string) error {
	c.identityPlanChanged(b, t, cus)
	return c.emit(ctx, b, t, EventPlanChanged, PlanChangedData{CustomerID: cus.ID, From: prevPlan, To: cus.Plan, Source: source})
}

// Delete removes a customer; its usage history stays for billing reports.
// A Clerk user's deletion is queued in the same batch and tried at once;
// when Clerk fails, the outbox retries it. Returns ENOTFOUND.
func (s *Customers) Delete(ctx context.Context, t Tenant, id string, idem *Idempotency) error {
	var user *OutboxEntry
	// The tier lock serializes the aggregates' read-modify-write (stats.go).
	_, err := s.c.update(ctx, t, idem, []Lock{customerLock(t, id), tiersLock(t)}, func(b Tx) (any, error) {
		c, err := customerIn(ctx, b, t, id)
		if err != nil {
			return nil, err
		}
		if err := adjustAggregates(ctx, b, t, shareOf(c), aggShare{}); err != nil {
			return nil, err
		}
		b.DeleteCustomer(t, c)
		if err := s.c.auth.customerDeleted(ctx, b, t, c.ID); err != nil {
			return nil, err
		}
		user = s.c.identityCustomerDeleted(b, t, c)
		if err := s.c.customerEvent(ctx, b, t, EventCustomerDeleted, c); err != nil {
			return nil, err
		}
		return c, nil
	})
	if err == nil && user != nil {
		s.c.deliverNow(ctx, user)
	}
	return err
}
