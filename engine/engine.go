// Package engine is the domain of dream-api: platforms and their keys,
// customers, tiers, usage metering and the decisions that limit it.
//
// It defines the interfaces it consumes (Store, Policy) and imports none of
// the adapters that implement them (storage, plugins, http).
package engine

import (
	"fmt"
	"time"
)

// Mode separates live and test data. Customers, usage and Stripe objects made
// in one mode are invisible to the other.
type Mode uint8

const (
	Live Mode = 0
	Test Mode = 1
)

func (m Mode) String() string {
	if m == Test {
		return "test"
	}
	return "live"
}

// ParseMode parses "live" or "test".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "live":
		return Live, nil
	case "test":
		return Test, nil
	}
	return 0, fmt.Errorf("engine: unknown mode %q", s)
}

// MarshalText encodes a Mode as "live" or "test".
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText decodes "live" or "test".
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Tenant is the world a secret key acts in: one platform, one mode.
type Tenant struct {
	PlatformID string
	Mode       Mode
}

// Clock returns the current time. Engines take it as a field so tests can
// move time; it defaults to time.Now.
type Clock func() time.Time
