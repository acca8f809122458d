package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skuflow/skuflow/gateway"
)

func newAPIKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apikey",
		Short: "Make API keys for the availability and reservation APIs",
	}
	cmd.AddCommand(newAPIKeyNewCmd())
	return cmd
}

func newAPIKeyNewCmd() *cobra.Command {
	var id, scopes, file string
	var ratePerSecond float64
	cmd := &cobra.Command{
		Use:   "new --id ID --scopes read,order [--rate N]",
		Short: "Print a new API key (once) and the line to add to the --api-keys file",
		Long: `Print a new API key and its line for the file that 'skuflow serve --api-keys'
(or dev) reads. The key is shown only here: the file holds its SHA-256 hash.
Scopes: read (availability queries and watches), order (PlaceOrder, GetOrder,
CancelOrder, ExtendOrder, FulfilOrder). --rate bounds the key's requests per
second (over it: 429 / RESOURCE_EXHAUSTED; 0: no limit).

With --out FILE the line is appended to FILE (created with mode 0600) and only
the key is printed, so a script can keep it:

  KEY=$(skuflow apikey new --id storefront --scopes read,order --rate 200 --out api-keys)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAPIKeyNew(cmd.OutOrStdout(), cmd.ErrOrStderr(), id, scopes, ratePerSecond, file)
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "the key's id (1 to 64 of A-Z a-z 0-9 _ -): named in logs, metrics and 403 answers, never secret")
	cmd.Flags().StringVar(&scopes, "scopes", "", "read, order or read,order")
	cmd.Flags().StringVar(&file, "out", "", "append the key's line to this file (the --api-keys file) and print only the key")
	cmd.Flags().Float64Var(&ratePerSecond, "rate", 0, "requests per second the key may make, with a burst as large (0: no limit)")
	_ = cmd.MarkFlagRequired("id")
	_ = cmd.MarkFlagRequired("scopes")
	return cmd
}

// runAPIKeyNew prints a new key and its line: with file, the line is
// appended to file and out gets the key alone; without, out gets the line
// (so it can be appended with >>) and info the key.
func runAPIKeyNew(out, info io.Writer, id, scopes string, ratePerSecond float64, file string) error {
	key, line, err := gateway.NewAPIKey(id, strings.Split(scopes, ","), ratePerSecond)
	if err != nil {
		return err
	}
	if file != "" {
		if data, err := os.ReadFile(file); err == nil {
			// Every line's first field, whether the line parses or not: an id
			// on a bad line is taken too.
			for _, line := range strings.Split(string(data), "\n") {
				if f := strings.Fields(line); len(f) > 0 && f[0] == id {
					return fmt.Errorf("--out %s already has a key with id %q: give the new key another id (to rotate: add a new key, move the clients to it, then remove the old line)", file, id)
				}
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--out %s: %w", file, err)
		}
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		_, werr := fmt.Fprintln(f, line)
		if err := errors.Join(werr, f.Close()); err != nil {
			return fmt.Errorf("--out %s: %w", file, err)
		}
		fmt.Fprintf(info, "API key %s added to %s; the key below is shown once (the file keeps only its hash); clients send 'Authorization: Bearer <key>'\n", id, file)
		fmt.Fprintln(out, key)
		return nil
	}
	fmt.Fprintf(info, "API key %s (shown once; the file keeps only its hash):\n  %s\nclients send it as 'Authorization: Bearer %s'\nthe line for the --api-keys file:\n", id, key, key)
	fmt.Fprintln(out, line)
	return nil
}
