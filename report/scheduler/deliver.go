package scheduler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/flowbox/flowbox/store"
)

// target is where a schedule delivers its report.
type target interface {
	// name names the target in the runs ("folder /srv/reports",
	// "mail to a@example.com", "webhook https://example.com/hook").
	name() string
	// kind is folder, mail or webhook (the metrics' label).
	kind() string
	// deliver delivers one report; a *permanentError is not tried again.
	deliver(ctx context.Context, d *delivery) error
}

// delivery is one report to deliver.
type delivery struct {
	schedule string
	period   period
	loc      *time.Location
	report   *store.Report
	// csv is the report as store.WriteReportCSV writes it.
	csv []byte
	// file is the CSV's file name: <schedule>-<period>.csv.
	file    string
	catchUp bool
}

// permanentError is a failure another attempt would not fix (a 5xx SMTP
// reply, a 4xx HTTP answer, a missing STARTTLS).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// folderTarget writes the CSV into a folder.
type folderTarget struct{ dir string }

func (f *folderTarget) name() string { return "folder " + f.dir }
func (f *folderTarget) kind() string { return "folder" }

// deliver writes <dir>/<schedule>-<period>.csv atomically (a temporary
// file renamed over it), mode 0640, creating the folder (0750).
func (f *folderTarget) deliver(_ context.Context, d *delivery) error {
	if err := os.MkdirAll(f.dir, 0o750); err != nil {
		return fmt.Errorf("cannot create folder %s: %w", f.dir, err)
	}
	final := filepath.Join(f.dir, d.file)
	tmp, err := os.CreateTemp(f.dir, "."+d.file+".*.tmp")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", final, err)
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing to remove
	if err := tmp.Chmod(0o640); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write %s: %w", final, err)
	}
	if _, err := tmp.Write(d.csv); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write %s: %w", final, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write %s: %w", final, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", final, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("cannot write %s: %w", final, err)
	}
	if dir, err := os.Open(f.dir); err == nil {
		_ = dir.Sync() // the rename survives a power cut
		dir.Close()
	}
	return nil
}
