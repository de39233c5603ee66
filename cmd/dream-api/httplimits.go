package main

import (
	"flag"
	"fmt"
	"strconv"
	"time"

	dhttp "github.com/dream-api/dream-api/http"
)

// HTTPConfig bounds what one client may hold of the server: how long its
// headers, its body, the answer and an idle keep-alive connection may take,
// and how many bodies may be read at once before their sender is
// authenticated (the Stripe webhooks). Flags win over the environment.
type HTTPConfig struct {
	ReadHeaderTimeout time.Duration // DREAM_READ_HEADER_TIMEOUT, --read-header-timeout: 10s
	// ReadTimeout bounds a request's body (dhttp.Limits.BodyTimeout).
	ReadTimeout  time.Duration // DREAM_READ_TIMEOUT, --read-timeout: 30s
	WriteTimeout time.Duration // DREAM_WRITE_TIMEOUT, --write-timeout: 2m
	IdleTimeout  time.Duration // DREAM_IDLE_TIMEOUT, --idle-timeout: 2m
	// MaxUnauthenticatedBodies: DREAM_MAX_UNAUTHENTICATED_BODIES,
	// --max-unauthenticated-bodies: 64.
	MaxUnauthenticatedBodies int
}

// Defaults of HTTPConfig. WriteTimeout leaves room for the slowest honest
// request: a Stripe call that is retried (30 s a try).
const (
	defaultReadHeaderTimeout = 10 * time.Second
	defaultWriteTimeout      = 2 * time.Minute
	defaultIdleTimeout       = 2 * time.Minute
)

func (c *HTTPConfig) register(fs *flag.FlagSet, env func(k, def string) string) error {
	durations := []struct {
		p           *time.Duration
		flag, env   string
		def         time.Duration
		description string
	}{
		{&c.ReadHeaderTimeout, "read-header-timeout", "DREAM_READ_HEADER_TIMEOUT", defaultReadHeaderTimeout, "how long a request's headers may take to arrive"},
		{&c.ReadTimeout, "read-timeout", "DREAM_READ_TIMEOUT", dhttp.DefaultBodyTimeout, "how long a request's body may take to arrive, from its headers on (400 and the connection closed beyond)"},
		{&c.WriteTimeout, "write-timeout", "DREAM_WRITE_TIMEOUT", defaultWriteTimeout, "how long handling a request and writing its answer may take, from its headers on"},
		{&c.IdleTimeout, "idle-timeout", "DREAM_IDLE_TIMEOUT", defaultIdleTimeout, "how long an idle keep-alive connection is kept open"},
	}
	for _, d := range durations {
		v, err := time.ParseDuration(env(d.env, d.def.String()))
		if err != nil || v <= 0 {
			return fmt.Errorf("%s: want a positive duration such as %s, got %q", d.env, d.def, env(d.env, ""))
		}
		fs.DurationVar(d.p, d.flag, v, d.description+" ("+d.env+")")
	}
	n, err := strconv.Atoi(env("DREAM_MAX_UNAUTHENTICATED_BODIES", strconv.Itoa(dhttp.DefaultMaxUnauthenticatedBodies)))
	if err != nil || n < 1 {
		return fmt.Errorf("DREAM_MAX_UNAUTHENTICATED_BODIES: want a positive number, got %q", env("DREAM_MAX_UNAUTHENTICATED_BODIES", ""))
	}
	fs.IntVar(&c.MaxUnauthenticatedBodies, "max-unauthenticated-bodies", n,
		"how many request bodies may be read at once before their sender is authenticated (the Stripe webhooks); 429 beyond (DREAM_MAX_UNAUTHENTICATED_BODIES)")
	return nil
}

// validate reports a flag given a value that bounds nothing.
func (c *HTTPConfig) validate() error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"--read-header-timeout", c.ReadHeaderTimeout}, {"--read-timeout", c.ReadTimeout}, {"--write-timeout", c.WriteTimeout}, {"--idle-timeout", c.IdleTimeout}} {
		if f.d <= 0 {
			return fmt.Errorf("%s must be a positive duration, got %s", f.name, f.d)
		}
	}
	if c.MaxUnauthenticatedBodies < 1 {
		return fmt.Errorf("--max-unauthenticated-bodies must be at least 1, got %d", c.MaxUnauthenticatedBodies)
	}
	return nil
}

// limits is the http package's part.
func (c *HTTPConfig) limits() dhttp.Limits {
	return dhttp.Limits{BodyTimeout: c.ReadTimeout, MaxUnauthenticatedBodies: c.MaxUnauthenticatedBodies}
}
