package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/flowbox/flowbox/enrich"
)

// runSubscribers implements `flowbox subscribers import [--replace]
// [--address-column NAME] [--name-column NAME] [--id-column NAME] FILE`: it
// reads static customers from CSV (header-less "prefix or IP, customer
// name, customer id" rows, or a file with a header row naming its columns
// in any order, such as a billing system's export; see
// enrich.ParseSubscriberCSVColumns) and records them in the subscriber
// history of the data directory. A running flowbox picks them up at its
// next poll. It dispatches `subscribers usage` and `subscribers at` too.
func runSubscribers(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "usage" {
		return runSubscribersUsage(ctx, e, args[1:])
	}
	if len(args) > 0 && args[0] == "at" {
		return runSubscribersAt(ctx, e, args[1:])
	}
	if len(args) == 0 || args[0] != "import" {
		return usageError{"usage: flowbox subscribers import [--replace] [--address-column NAME] [--name-column NAME] [--id-column NAME] [--config FILE] [--data-dir DIR] FILE.csv\n" +
			"         FILE.csv: rows of \"prefix or IP, customer name[, customer id]\", or a header row naming the columns in any order\n" +
			"         (address/ip/prefix, name/customer/customer_name, id/customer_id/account/account_id...; other columns ignored)\n" +
			"       flowbox subscribers usage [--month YYYY-MM | --from DATE --to DATE] [--router NAME] [--search S] [--sort total|download|upload|name] [--format table|csv|json]\n" +
			"       flowbox subscribers at --address IP --at TIME [--tz ZONE] [--json]"}
	}
	fs := newFlagSet(e, "subscribers import")
	replace := fs.Bool("replace", false, "end imported customers that are absent from FILE")
	var cols enrich.CSVColumns
	fs.StringVar(&cols.Address, "address-column", "", "header `NAME` of the prefix or IP column (default: address, ip, prefix...)")
	fs.StringVar(&cols.Name, "name-column", "", "header `NAME` of the customer name column (default: name, customer, customer_name...)")
	fs.StringVar(&cols.ID, "id-column", "", "header `NAME` of the customer id column (default: customer_id, id, account, account_id...)")
	load := commonFlags(fs)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"subscribers import: want exactly one CSV file"}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("cannot open subscriber file: %w", err)
	}
	defer f.Close()
	rows, err := enrich.ParseSubscriberCSVColumns(f, cols)
	if err != nil {
		return fmt.Errorf("cannot import %s:\n%w", fs.Arg(0), err)
	}
	logger := newLogger(e.stderr, cfg.Log).With("component", "store")
	st, err := openInventory(ctx, cfg.DataDir, logger)
	if err != nil {
		return fmt.Errorf("cannot open store: %w", err)
	}
	defer st.Close()
	res, err := enrich.ImportSubscribers(ctx, st.Inventory, rows, *replace, time.Now(), cfg.Enrich.MaxSubscribers)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d rows: %d customers started or changed, %d ended, %d dropped (max-subscribers)\n",
		res.Rows, res.Opened, res.Ended, res.Dropped)
	return nil
}
