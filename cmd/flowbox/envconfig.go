package main

import (
	"flag"
	"strings"
)

// Environment variables that override the listen addresses of the
// configuration file (and add allowed exporters) in `flowbox serve` and
// `flowbox check`, for containers
// (`podman run -e FLOWBOX_LISTEN_WEB=:9090 ...`). The command-line flags
// --listen-web and --listen-netflow win over them. FLOWBOX_ADMIN_PASSWORD is
// read by the web configuration itself (web.EnvAdminPassword).
const (
	// EnvListenWeb overrides web.listen: one ADDR.
	EnvListenWeb = "FLOWBOX_LISTEN_WEB"
	// EnvListenNetflow overrides collector.listen: ADDR[,ADDR...].
	EnvListenNetflow = "FLOWBOX_LISTEN_NETFLOW"
	// EnvAllowedExporters adds to collector.allowed-exporters:
	// PREFIX[,PREFIX...] (a container behind NAT sees its gateway's
	// address for every router).
	EnvAllowedExporters = "FLOWBOX_ALLOWED_EXPORTERS"
)

// envOverrides returns a configuration mutator that applies EnvListenWeb
// and EnvListenNetflow, except where the matching flag of fs
// (listen-web, listen-netflow) was given on the command line. Empty
// variables are ignored; the values are checked by Config.Validate with the
// rest of the configuration.
func envOverrides(getenv func(string) string, fs *flag.FlagSet) func(*Config) {
	set := map[string]bool{}
	if fs != nil {
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	}
	return func(cfg *Config) {
		if v := strings.TrimSpace(getenv(EnvListenWeb)); v != "" && !set["listen-web"] {
			cfg.Web.Listen = v
		}
		if v := strings.TrimSpace(getenv(EnvListenNetflow)); v != "" && !set["listen-netflow"] {
			var addrs []string
			for _, a := range strings.Split(v, ",") {
				if a = strings.TrimSpace(a); a != "" {
					addrs = append(addrs, a)
				}
			}
			if len(addrs) > 0 {
				cfg.Collector.Listen = addrs
			}
		}
		if v := strings.TrimSpace(getenv(EnvAllowedExporters)); v != "" {
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					cfg.Collector.AllowedExporters = append(cfg.Collector.AllowedExporters, p)
				}
			}
		}
	}
}
