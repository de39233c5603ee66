package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/dream-api/dream-api/plugins"
)

// PluginConfig is the WASM runtime's part of Config.
type PluginConfig struct {
	Deadline    time.Duration // DREAM_PLUGIN_DEADLINE, --plugin-deadline
	MemoryPages uint          // DREAM_PLUGIN_MEMORY_PAGES, --plugin-memory-pages
}

func (c *PluginConfig) register(fs *flag.FlagSet, env func(k, def string) string) error {
	d, err := time.ParseDuration(env("DREAM_PLUGIN_DEADLINE", plugins.DefaultDeadline.String()))
	if err != nil {
		return fmt.Errorf("DREAM_PLUGIN_DEADLINE: %w", err)
	}
	pages, err := strconv.ParseUint(env("DREAM_PLUGIN_MEMORY_PAGES", strconv.Itoa(plugins.DefaultMemoryPages)), 10, 32)
	if err != nil {
		return fmt.Errorf("DREAM_PLUGIN_MEMORY_PAGES: %w", err)
	}
	fs.DurationVar(&c.Deadline, "plugin-deadline", d, "deadline of one plugin decision")
	fs.UintVar(&c.MemoryPages, "plugin-memory-pages", uint(pages), "memory cap of a plugin instance, in 64 KiB pages")
	return nil
}

// openPlugins starts the wazero runtime, with its compilation cache in the
// data dir so that a restart does not compile known modules again.
func openPlugins(ctx context.Context, c PluginConfig, dataDir string, log *slog.Logger) (*plugins.Runtime, error) {
	return plugins.New(ctx, &plugins.Options{
		Deadline:    c.Deadline,
		MemoryPages: uint32(c.MemoryPages),
		CacheDir:    filepath.Join(dataDir, "wasm-cache"),
		Logger:      log.With("component", "plugin"),
	})
}
