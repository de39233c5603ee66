// Command dream-api serves auth, billing and usage limits for SaaS
// developers from one binary and one embedded store.
//
// Usage:
//
//	dream-api serve [--addr 127.0.0.1:8787] [--data ./data]
//	dream-api platform create --name N [--email E] [--server URL]
//	dream-api backup DIR [--server URL]
//	dream-api version
package main

import (
	"context"
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

func run(ctx context.Context, args []string) error {
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
		if len(args) < 2 || args[1] != "create" {
			return fmt.Errorf("usage: dream-api platform create --name N [--email E] [--server URL]")
		}
		return platformCreate(ctx, args[2:], os.Stdout)
	case "backup":
		return backup(ctx, args[1:], os.Stdout)
	case "version", "--version", "-v":
		fmt.Println(Version)
		return nil
	case "help", "--help", "-h":
		fmt.Println("usage: dream-api serve | platform create | backup DIR | version")
		return nil
	}
	return fmt.Errorf("unknown command %q (serve, platform create, backup, version)", args[0])
}
