package main

import (
	"bytes"
	"cmp"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// zeroDurations returns b with every duration of out's type (a pointer) written as a
// bare 0 ("nat-retention: 0", as the documentation says to turn a feature
// off) written as 0s: yaml.v3 reads durations from strings only. Lines
// keep their numbers, for the error messages.
func zeroDurations(b []byte, out any) []byte {
	t := reflect.TypeOf(out)
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return b
	}
	var zeros []*yaml.Node
	findZeroDurations(doc.Content[0], t, &zeros)
	if len(zeros) == 0 {
		return b
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	// From the last column of a line to the first: the inserts do not
	// move the others.
	slices.SortFunc(zeros, func(a, c *yaml.Node) int { return cmp.Or(cmp.Compare(a.Line, c.Line), cmp.Compare(c.Column, a.Column)) })
	for _, n := range zeros {
		if n.Line < 1 || n.Line > len(lines) {
			continue
		}
		l := lines[n.Line-1]
		if col := n.Column - 1; col >= 0 && col < len(l) && l[col] == '0' {
			lines[n.Line-1] = slices.Concat(l[:col+1], []byte("s"), l[col+1:])
		}
	}
	return bytes.Join(lines, nil)
}

var durationType = reflect.TypeFor[time.Duration]()

// findZeroDurations appends the plain 0 scalars of n that decode into
// durations of type t.
func findZeroDurations(n *yaml.Node, t reflect.Type, out *[]*yaml.Node) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!int" && n.Value == "0" {
			*out = append(*out, n)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		fields := map[string]reflect.Type{}
		yamlFields(t, fields)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if ft, ok := fields[n.Content[i].Value]; ok {
				findZeroDurations(n.Content[i+1], ft, out)
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				findZeroDurations(c, t.Elem(), out)
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 1; i < len(n.Content); i += 2 {
				findZeroDurations(n.Content[i], t.Elem(), out)
			}
		}
	}
}

// yamlFields adds the YAML keys of struct type t (inline structs
// included) with their types.
func yamlFields(t reflect.Type, out map[string]reflect.Type) {
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				yamlFields(ft, out)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
}
