package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dream-api/dream-api/engine"
)

// developerCreate is `dream-api developer create`: a developer account (who
// signs in to /dashboard) and its first platform, made by the operator.
// The password comes from DREAM_DEVELOPER_PASSWORD, or is generated and
// printed once.
func developerCreate(ctx context.Context, args []string, stdout io.Writer) error {
	var a adminFlags
	var in engine.SignupInput
	fs := flag.NewFlagSet("developer create", flag.ContinueOnError)
	a.register(fs)
	fs.StringVar(&in.Email, "email", "", "the developer's email: their sign-in name (required)")
	fs.StringVar(&in.PlatformName, "platform-name", "", "name of their first platform (required)")
	env := append(adminEnv, envVar{"DREAM_DEVELOPER_PASSWORD", "the account's password (at least 10 characters); generated and printed when unset"})
	pos, err := parseArgs(fs, args, stdout, "dream-api developer create --email E --platform-name N [--server URL] [--data DIR]",
		"Creates a developer account that signs in at /dashboard/login, and its first platform, and\n"+
			"prints {developerId, email, password (when generated), platformId, publishableKey, secretKey,\n"+
			"test} as JSON (the secrets are shown once): through the admin API of the server at --server\n"+
			"when one answers, else by opening the data dir --data itself (stop the server first).", env)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected arguments: %s (see dream-api developer create --help)", strings.Join(pos, " "))
	}
	if in.Email == "" || in.PlatformName == "" {
		return errors.New("--email and --platform-name are required")
	}
	in.Password = os.Getenv("DREAM_DEVELOPER_PASSWORD")
	generated := in.Password == ""
	if generated {
		b := make([]byte, 15)
		rand.Read(b)
		in.Password = strings.ToLower(base32.StdEncoding.EncodeToString(b))
	}
	nd, err := throughAdmin(ctx, &a, "/admin/developers", in, func(eng *engine.Engine) (*engine.NewDeveloper, error) {
		return eng.Developers.Signup(ctx, in, nil)
	})
	if err != nil {
		return err
	}
	out := map[string]any{
		"developerId": nd.Developer.ID, "email": nd.Developer.Email,
		"platformId": nd.Platform.Platform.ID, "publishableKey": nd.Platform.PublishableKey,
		"secretKey": nd.Platform.SecretKey, "test": nd.Platform.Test,
	}
	if generated {
		out["password"] = in.Password
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
