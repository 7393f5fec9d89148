package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (c *cli) newMigrateCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database schema migrations",
		Long: `Apply pending database schema migrations and print the schema version before
and after. Migrations are forward only; the pending ones run in one transaction
(a failure leaves the schema as it was), one migrating process at a time.
Needed before serve when store.auto_migrate is false.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			ctx := cmd.Context()
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			st, err := openStore(ctx, cfg, adminLogger(cmd))
			if err != nil {
				return err
			}
			defer func() {
				if cerr := st.Close(); cerr != nil && err == nil {
					err = fmt.Errorf("closing the store: %w", cerr)
				}
			}()
			// prepareSchema's message for a too-new schema is the
			// helpful one; Migrate would only say ErrSchemaTooNew.
			current, known, err := st.SchemaVersion(ctx)
			if err != nil {
				return fmt.Errorf("reading the schema version: %w", err)
			}
			if current > known {
				return prepareSchema(ctx, st, false, adminLogger(cmd))
			}
			from, to, err := st.Migrate(ctx)
			if err != nil {
				return fmt.Errorf("migrating the database schema: %w", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, struct {
					From int `json:"from"`
					To   int `json:"to"`
				}{from, to})
			}
			if from == to {
				_, err = fmt.Fprintf(out, "schema is up to date at version %d\n", to)
			} else {
				_, err = fmt.Fprintf(out, "migrated schema from version %d to %d\n", from, to)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print {\"from\":N,\"to\":M} instead of text")
	return cmd
}
