package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/flowbox/flowbox/alerts"
	"github.com/flowbox/flowbox/alerts/mitigate"
	"github.com/flowbox/flowbox/alerts/notify"
	"github.com/flowbox/flowbox/collector"
	"github.com/flowbox/flowbox/coverage"
	"github.com/flowbox/flowbox/domains"
	"github.com/flowbox/flowbox/enrich"
	"github.com/flowbox/flowbox/provision"
	"github.com/flowbox/flowbox/report/scheduler"
	storagepkg "github.com/flowbox/flowbox/store/storage"
	"github.com/flowbox/flowbox/web"
)

// Config is the whole flowbox configuration file. Each section belongs to
// one component and is validated by it.
type Config struct {
	// DataDir holds the database, the key file and the template cache.
	DataDir   string            `yaml:"data-dir"`
	Log       LogConfig         `yaml:"log"`
	Collector collector.Config  `yaml:"collector"`
	Store     storagepkg.Config `yaml:"store"`
	Web       web.Config        `yaml:"web"`
	Enrich    enrich.Config     `yaml:"enrich"`
	Provision provision.Config  `yaml:"provision"`
	Alerts    alerts.Config     `yaml:"alerts"`
	// Notifications deliver the alerts (webhook, Slack, Discord,
	// Telegram, e-mail).
	Notifications notify.Config `yaml:"notifications"`
	// Mitigation adds attacked and abusive addresses to RouterOS address
	// lists (opt-in per router).
	Mitigation mitigate.Config `yaml:"mitigation"`
	// Coverage polls the routers' interface counters and compares them
	// with the flows (flowbox coverage, /api/v1/coverage).
	Coverage coverage.Config `yaml:"coverage"`
	// Domains names remote addresses from the routers' DNS caches
	// (visited domains), with a reverse-DNS fallback for the busiest.
	Domains domains.Config `yaml:"domains"`
	// Reports are the scheduled reports: monthly or weekly CSV reports
	// written to a folder, mailed or posted to a webhook.
	Reports scheduler.Config `yaml:"reports"`
}

// LogConfig selects the log level and format.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

func (l LogConfig) slogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// DefaultConfig returns the configuration used when no file is given. The
// data directory is /var/lib/flowbox, or ./data when run from a source tree
// (a directory holding go.mod).
func DefaultConfig() Config {
	dataDir := "/var/lib/flowbox"
	if _, err := os.Stat("go.mod"); err == nil {
		dataDir = "data"
	}
	return Config{
		DataDir:       dataDir,
		Log:           LogConfig{Level: "info", Format: "text"},
		Collector:     collector.DefaultConfig(),
		Store:         storagepkg.DefaultConfig(),
		Web:           web.DefaultConfig(),
		Enrich:        enrich.DefaultConfig(),
		Provision:     defaultProvision(),
		Alerts:        alerts.DefaultConfig(),
		Notifications: notify.DefaultConfig(),
		Mitigation:    mitigate.DefaultConfig(),
		Coverage:      coverage.DefaultConfig(),
		Domains:       domains.DefaultConfig(),
		Reports:       scheduler.DefaultConfig(),
	}
}

// defaultProvision is the provisioning defaults with the collector port
// left to reconcile (0: the port of the first collector listen address).
func defaultProvision() provision.Config {
	p := provision.DefaultConfig()
	p.CollectorPort = 0
	return p
}

// Validate checks every section and returns all problems at once, each
// naming its YAML path.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir: must not be empty"))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not one of text, json", c.Log.Format))
	}
	errs = append(errs, prefixErr("collector", c.Collector.Validate()))
	errs = append(errs, prefixErr("store", c.Store.Validate()))
	errs = append(errs, prefixErr("web", c.Web.Validate()))
	errs = append(errs, prefixErr("enrich", c.Enrich.Validate()))
	errs = append(errs, prefixErr("provision", c.Provision.Validate()))
	errs = append(errs, prefixErr("alerts", c.Alerts.Validate()))
	errs = append(errs, prefixErr("notifications", c.Notifications.Validate()))
	errs = append(errs, prefixErr("mitigation", c.Mitigation.Validate()))
	errs = append(errs, prefixErr("coverage", c.Coverage.Validate()))
	errs = append(errs, prefixErr("domains", c.Domains.Validate()))
	errs = append(errs, prefixErr("reports", c.Reports.Validate()))
	return errors.Join(errs...)
}

// reconcile derives settings that depend on other sections: unless the
// provisioning port is set (provision.collector-port), routers are pointed
// at the port the collector really listens on.
func (c *Config) reconcile() {
	if c.Provision.CollectorPort == 0 {
		c.Provision.CollectorPort = provision.DefaultConfig().CollectorPort
		if p, ok := collectorPort(c.Collector.Listen); ok {
			c.Provision.CollectorPort = p
		}
	}
}

// prefixErr prefixes every line of a joined error with the section name.
func prefixErr(section string, err error) error {
	if err == nil {
		return nil
	}
	var out []error
	for _, line := range strings.Split(err.Error(), "\n") {
		out = append(out, fmt.Errorf("%s.%s", section, line))
	}
	return errors.Join(out...)
}

// LoadConfig reads a YAML file strictly (unknown keys are errors) over the
// defaults. An empty path returns the defaults. Its errors name the YAML
// path and line of each problem.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("cannot read config: %w", err)
	}
	if err := decodeStrict(b, &cfg); err != nil {
		return cfg, fmt.Errorf("cannot parse config %s:\n%w", path, err)
	}
	return cfg, nil
}

// decodeStrict decodes the YAML document b into out, refusing unknown
// keys. yaml.v3 reports type errors with Go type names ("field workerz not
// found in type collector.Config"); they are rewritten to name the YAML
// path and line ("collector.workerz: unknown key (line 3)").
func decodeStrict(b []byte, out any) error {
	b = zeroDurations(b, out)
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err := dec.Decode(out)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err // a syntax error: "yaml: line 1: did not find expected ..."
	}
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil {
		return err
	}
	spots := yamlSpots(&doc, "", nil)
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		errs = append(errs, describeYAMLError(spots, msg))
	}
	return errors.Join(errs...)
}

// yamlSpot is a key or sequence item of a YAML document with its path
// (collector.listen[1]).
type yamlSpot struct {
	path string
	key  *yaml.Node // nil for sequence items
	val  *yaml.Node
}

// yamlSpots lists every key and sequence item under n, in document order.
func yamlSpots(n *yaml.Node, path string, out []yamlSpot) []yamlSpot {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			out = yamlSpots(c, path, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			out = append(out, yamlSpot{path: p, key: k, val: v})
			out = yamlSpots(v, p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			out = append(out, yamlSpot{path: p, val: c})
			out = yamlSpots(c, p, out)
		}
	}
	return out
}

var (
	yamlErrLine    = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlErrUnknown = regexp.MustCompile(`^field (.+) not found in type \S+$`)
	yamlErrDup     = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	yamlErrType    = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
)

// describeYAMLError rewrites one yaml.v3 type error ("line 3: field workerz
// not found in type collector.Config") with the YAML path of the spot it
// is about. A message it does not know is returned as it is.
func describeYAMLError(spots []yamlSpot, msg string) error {
	m := yamlErrLine.FindStringSubmatch(msg)
	if m == nil {
		return errors.New(msg)
	}
	line, _ := strconv.Atoi(m[1])
	text := m[2]
	keyAt := func(name string) (yamlSpot, bool) {
		for _, s := range spots {
			if s.key != nil && s.key.Line == line && s.key.Value == name {
				return s, true
			}
		}
		return yamlSpot{}, false
	}
	if u := yamlErrUnknown.FindStringSubmatch(text); u != nil {
		if s, ok := keyAt(u[1]); ok {
			return fmt.Errorf("%s: unknown key (line %d)", s.path, line)
		}
	}
	if d := yamlErrDup.FindStringSubmatch(text); d != nil {
		if s, ok := keyAt(d[1]); ok {
			return fmt.Errorf("%s: duplicate key, first given at line %s (line %d)", s.path, d[2], line)
		}
	}
	if t := yamlErrType.FindStringSubmatch(text); t != nil {
		tag, value, goType := t[1], t[2], t[3]
		for _, s := range spots {
			v := s.val
			if v.Line != line || v.ShortTag() != tag {
				continue
			}
			if v.Kind == yaml.ScalarNode && v.Value != value &&
				!(strings.HasSuffix(value, "...") && strings.HasPrefix(v.Value, strings.TrimSuffix(value, "..."))) {
				continue
			}
			return fmt.Errorf("%s: %s is not %s (line %d)", s.path, describeYAMLValue(v), describeGoType(goType), line)
		}
	}
	return fmt.Errorf("line %d: %s", line, text)
}

// describeYAMLValue names a value of the document for an error message.
func describeYAMLValue(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

// describeGoType names what a configuration field expects, in YAML terms.
func describeGoType(t string) string {
	switch {
	case t == "time.Duration":
		return "a duration (such as 500ms, 30s, 5m or 48h)"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "uint"):
		return "a non-negative integer"
	case strings.HasPrefix(t, "int"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.Contains(t, "."):
		return "a mapping"
	}
	return "a " + t
}

// configLoader loads and validates the configuration after the flags were
// parsed. Mutators run after the file and --data-dir are applied and before
// the derived settings are computed and the whole is validated, so commands
// can apply their own overrides.
type configLoader func(mutate ...func(*Config)) (Config, error)

// commonFlags registers the flags every subcommand takes and returns the
// loader of the configuration.
func commonFlags(fs *flag.FlagSet) configLoader {
	cfgPath := fs.String("config", "", "configuration `FILE` (YAML); defaults apply when absent")
	dataDir := fs.String("data-dir", "", "data `DIR` (overrides data-dir in the config)")
	return func(mutate ...func(*Config)) (Config, error) {
		cfg, err := LoadConfig(*cfgPath)
		if err != nil {
			return cfg, err
		}
		if *dataDir != "" {
			cfg.DataDir = *dataDir
		}
		for _, m := range mutate {
			m(&cfg)
		}
		cfg.reconcile()
		if err := cfg.Validate(); err != nil {
			return cfg, fmt.Errorf("invalid config:\n%w", err)
		}
		return cfg, nil
	}
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("flowbox "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// parseFlags parses args and turns flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}
