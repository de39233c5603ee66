package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/plugins"
)

// PluginConfig is the WASM runtime's part of Config, and the engine's
// per-platform plugin limits. Zero values take the defaults of the plugins
// and engine packages.
type PluginConfig struct {
	Deadline        time.Duration // DREAM_PLUGIN_DEADLINE, --plugin-deadline
	MemoryPages     uint          // DREAM_PLUGIN_MEMORY_PAGES, --plugin-memory-pages
	CompileDeadline time.Duration // DREAM_PLUGIN_COMPILE_DEADLINE, --plugin-compile-deadline
	MaxFunctions    int           // DREAM_PLUGIN_MAX_FUNCTIONS, --plugin-max-functions
	MaxCodeSize     int           // DREAM_PLUGIN_MAX_CODE_SIZE, --plugin-max-code-size
	MaxLoads        int           // DREAM_PLUGIN_MAX_LOADS, --plugin-max-loads

	Versions         int   // DREAM_PLUGIN_VERSIONS, --plugin-versions
	StorageBytes     int64 // DREAM_QUOTA_PLUGIN_BYTES, --quota-plugin-bytes
	UploadsPerMinute int   // DREAM_QUOTA_PLUGIN_UPLOADS, --quota-plugin-uploads
	DryRunsPerMinute int   // DREAM_QUOTA_PLUGIN_DRY_RUNS, --quota-plugin-dry-runs
}

func (c *PluginConfig) register(fs *flag.FlagSet, env func(k, def string) string) error {
	var errs []error
	dur := func(p *time.Duration, name, key string, def time.Duration, usage string) {
		d, err := time.ParseDuration(env(key, def.String()))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		fs.DurationVar(p, name, d, usage)
	}
	num := func(name, key string, def int64, usage string) int64 {
		n, err := strconv.ParseInt(env(key, strconv.FormatInt(def, 10)), 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		return n
	}
	integer := func(p *int, name, key string, def int, usage string) {
		fs.IntVar(p, name, int(num(name, key, int64(def), usage)), usage)
	}
	dur(&c.Deadline, "plugin-deadline", "DREAM_PLUGIN_DEADLINE", plugins.DefaultDeadline, "deadline of one plugin decision")
	pages, err := strconv.ParseUint(env("DREAM_PLUGIN_MEMORY_PAGES", strconv.Itoa(plugins.DefaultMemoryPages)), 10, 32)
	if err != nil {
		errs = append(errs, fmt.Errorf("DREAM_PLUGIN_MEMORY_PAGES: %w", err))
	}
	fs.UintVar(&c.MemoryPages, "plugin-memory-pages", uint(pages), "memory cap of a plugin instance, in 64 KiB pages")
	dur(&c.CompileDeadline, "plugin-compile-deadline", "DREAM_PLUGIN_COMPILE_DEADLINE", plugins.DefaultCompileDeadline,
		"deadline to compile an uploaded module (the upload is refused past it)")
	integer(&c.MaxFunctions, "plugin-max-functions", "DREAM_PLUGIN_MAX_FUNCTIONS", plugins.DefaultMaxFunctions,
		"functions a module may define (checked before compiling)")
	integer(&c.MaxCodeSize, "plugin-max-code-size", "DREAM_PLUGIN_MAX_CODE_SIZE", plugins.DefaultMaxCodeSize,
		"bytes of code (all function bodies) a module may have")
	integer(&c.MaxLoads, "plugin-max-loads", "DREAM_PLUGIN_MAX_LOADS", max(1, runtime.GOMAXPROCS(0)/2),
		"modules compiled and started at once, server-wide (one at a time per platform)")
	integer(&c.Versions, "plugin-versions", "DREAM_PLUGIN_VERSIONS", engine.DefaultPluginVersions,
		"uploaded versions kept per platform (the active one always)")
	fs.Int64Var(&c.StorageBytes, "quota-plugin-bytes", num("quota-plugin-bytes", "DREAM_QUOTA_PLUGIN_BYTES", engine.DefaultPluginStorageBytes, ""),
		"bytes of stored modules per platform (older versions are deleted to fit)")
	integer(&c.UploadsPerMinute, "quota-plugin-uploads", "DREAM_QUOTA_PLUGIN_UPLOADS", engine.DefaultPluginUploadsPerMinute,
		"plugin uploads and rollbacks per platform per minute")
	integer(&c.DryRunsPerMinute, "quota-plugin-dry-runs", "DREAM_QUOTA_PLUGIN_DRY_RUNS", engine.DefaultPluginDryRunsPerMinute,
		"plugin dry-runs per platform per minute")
	return errors.Join(errs...)
}

// check refuses limits that are not positive.
func (c *PluginConfig) check() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"--plugin-compile-deadline", int64(c.CompileDeadline)}, {"--plugin-max-functions", int64(c.MaxFunctions)},
		{"--plugin-max-code-size", int64(c.MaxCodeSize)}, {"--plugin-max-loads", int64(c.MaxLoads)},
		{"--plugin-versions", int64(c.Versions)}, {"--quota-plugin-bytes", c.StorageBytes},
		{"--quota-plugin-uploads", int64(c.UploadsPerMinute)}, {"--quota-plugin-dry-runs", int64(c.DryRunsPerMinute)},
	} {
		if f.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", f.name))
		}
	}
	return errors.Join(errs...)
}

// engineLimits are the engine's per-platform plugin limits.
func (c *PluginConfig) engineLimits() engine.PluginLimits {
	return engine.PluginLimits{
		Versions:         c.Versions,
		StorageBytes:     c.StorageBytes,
		UploadsPerMinute: c.UploadsPerMinute,
		DryRunsPerMinute: c.DryRunsPerMinute,
	}
}

// openPlugins starts the wazero runtime, with its compilation cache in the
// data dir so that a restart does not compile known modules again.
func openPlugins(ctx context.Context, c PluginConfig, dataDir string, log *slog.Logger) (*plugins.Runtime, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return plugins.New(ctx, &plugins.Options{
		Deadline:        c.Deadline,
		MemoryPages:     uint32(c.MemoryPages),
		CompileDeadline: c.CompileDeadline,
		MaxFunctions:    c.MaxFunctions,
		MaxCodeSize:     c.MaxCodeSize,
		MaxLoads:        c.MaxLoads,
		CacheDir:        filepath.Join(dataDir, "wasm-cache"),
		Logger:          log.With("component", "plugin"),
	})
}
