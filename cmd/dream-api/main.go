// Command dream-api serves auth, billing and usage limits for SaaS
// developers from one binary and one embedded store.
//
// Usage:
//
//	dream-api serve [--addr 127.0.0.1:8787] [--data ./data] [--backup-dir DIR] …
//	dream-api platform create --name N [--email E] [--server URL] [--data DIR]
//	dream-api backup DIR [--server URL] [--data DIR]
//	dream-api restore BACKUP --data DIR
//	dream-api plugin push|dry-run|rollback|status [--key K] [--server URL]
//	dream-api version
//
// Flags may come before or after the positional arguments; every
// subcommand's --help lists its flags and the environment variables it
// reads.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Version is set at build time with -ldflags "-X main.Version=…".
var Version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dream-api:", err)
		os.Exit(1)
	}
}

// usage is the program's help.
const usage = `usage:
  dream-api serve [flags]                                   serve the API
  dream-api platform create --name N [--email E] [--server URL] [--data DIR]
  dream-api platform suspend|resume ID [--reason R]         stop a platform's keys / start them again
  dream-api developer create --email E --platform-name N    a dashboard account and its platform
  dream-api backup DIR [--server URL] [--data DIR]          write a backup
  dream-api restore BACKUP --data DIR                       make a data dir of a backup
  dream-api plugin push|dry-run|rollback|status [--key K] [--server URL]
  dream-api migrate --from DIR --to postgres://…            copy a data dir's store to PostgreSQL (or back: --from postgres://… --to DIR)
  dream-api version

dream-api COMMAND --help lists a command's flags and environment variables.`

func run(ctx context.Context, args []string) error {
	err := dispatch(ctx, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil // --help was asked for and written
	}
	return err
}

func dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		args = []string{"serve"}
	}
	switch args[0] {
	case "serve":
		m := NewMain()
		if err := m.ParseFlags(ctx, args[1:]); err != nil {
			return err
		}
		if err := m.Run(ctx); err != nil {
			m.Close()
			return err
		}
		<-ctx.Done()
		return m.Close()
	case "platform":
		const platformUsage = "usage: dream-api platform create --name N [--email E] [--server URL] [--data DIR]\n" +
			"       dream-api platform suspend ID [--reason R] [--server URL] [--data DIR]\n" +
			"       dream-api platform resume ID [--server URL] [--data DIR]"
		if len(args) >= 2 && (args[1] == "--help" || args[1] == "-h" || args[1] == "help") {
			fmt.Println(platformUsage + "\n\ndream-api platform create|suspend|resume --help lists its flags and environment variables.")
			return nil
		}
		switch {
		case len(args) >= 2 && args[1] == "create":
			return platformCreate(ctx, args[2:], os.Stdout)
		case len(args) >= 2 && (args[1] == "suspend" || args[1] == "resume"):
			return platformSuspend(ctx, args[1], args[2:], os.Stdout)
		}
		return fmt.Errorf("%s", platformUsage)
	case "developer":
		if len(args) < 2 || args[1] != "create" {
			return fmt.Errorf("usage: dream-api developer create --email E --platform-name N [--server URL] [--data DIR]")
		}
		return developerCreate(ctx, args[2:], os.Stdout)
	case "backup":
		return backup(ctx, args[1:], os.Stdout)
	case "plugin":
		return pluginCommand(ctx, args[1:], os.Stdout)
	case "restore":
		return restore(ctx, args[1:], os.Stdout)
	case "migrate":
		return migrate(ctx, args[1:], os.Stdout)
	case "version", "--version", "-v":
		fmt.Println(Version)
		return nil
	case "help", "--help", "-h":
		fmt.Println(usage)
		return nil
	}
	return fmt.Errorf("unknown command %q (serve, platform create, developer create, backup, restore, plugin, migrate, version; see dream-api --help)", args[0])
}
