package netflow

import "fmt"

// checkInvariants checks that the decoder's indexes agree: every template
// is in its domain's map and in both lists, the counts add up and stay
// within their bounds, the exporter heap is a max-heap on template counts,
// the exporter LRU list holds every exporter once, and every waiting data
// set is counted once.
func (d *Decoder) checkInvariants() error {
	total := 0
	n := 0
	for e := d.lru.head; e != nil; e = e.next {
		n++
		if d.exporters[e.addr] != e {
			return fmt.Errorf("exporter %v in the LRU list but not in the map", e.addr)
		}
		if e.next != nil && e.next.prev != e {
			return fmt.Errorf("exporter list broken at %v", e.addr)
		}
		if e.heapIdx < 0 || e.heapIdx >= len(d.byTemplates) || d.byTemplates[e.heapIdx] != e {
			return fmt.Errorf("exporter %v: heap index %d wrong", e.addr, e.heapIdx)
		}
		inList := 0
		for t := e.tmpl.head; t != nil; t = t.link[byExporter].next {
			inList++
			if t.dom == nil || t.dom.e != e || t.dom.templates[t.key.id] != t {
				return fmt.Errorf("exporter %v: template %d not in its domain", e.addr, t.key.id)
			}
		}
		inDomains := 0
		for k, dom := range e.domains {
			if dom.key != k || dom.e != e {
				return fmt.Errorf("exporter %v: domain %v misfiled", e.addr, k)
			}
			inDom := 0
			for t := dom.tmpl.head; t != nil; t = t.link[byDomain].next {
				inDom++
				if t.dom != dom {
					return fmt.Errorf("exporter %v domain %v: template %d of another domain", e.addr, k, t.key.id)
				}
			}
			if inDom != len(dom.templates) {
				return fmt.Errorf("exporter %v domain %v: %d templates listed, %d in the map", e.addr, k, inDom, len(dom.templates))
			}
			if inDom > d.cfg.MaxTemplatesPerDomain {
				return fmt.Errorf("exporter %v domain %v: %d templates, quota %d", e.addr, k, inDom, d.cfg.MaxTemplatesPerDomain)
			}
			inDomains += inDom
		}
		if len(e.domains) > maxDomains {
			return fmt.Errorf("exporter %v: %d domains", e.addr, len(e.domains))
		}
		if inList != inDomains || inList != e.stats.Templates {
			return fmt.Errorf("exporter %v: %d templates listed, %d in domains, %d counted", e.addr, inList, inDomains, e.stats.Templates)
		}
		total += inList
		s := e.stats
		if s.NoTemplateSets != s.PendingSetsDecoded+s.PendingSetsExpired+s.PendingSetsEvicted+uint64(len(e.pending)) {
			return fmt.Errorf("exporter %v: %d sets without template, %d decoded + %d expired + %d evicted + %d waiting",
				e.addr, s.NoTemplateSets, s.PendingSetsDecoded, s.PendingSetsExpired, s.PendingSetsEvicted, len(e.pending))
		}
		if s.PendingDropped != s.PendingSetsExpired+s.PendingSetsEvicted {
			return fmt.Errorf("exporter %v: %d dropped, %d expired + %d evicted", e.addr, s.PendingDropped, s.PendingSetsExpired, s.PendingSetsEvicted)
		}
	}
	if n != len(d.exporters) || len(d.byTemplates) != n {
		return fmt.Errorf("%d exporters listed, %d in the map, %d in the heap", n, len(d.exporters), len(d.byTemplates))
	}
	if total != d.templates {
		return fmt.Errorf("%d templates, counted %d", total, d.templates)
	}
	for i := 1; i < len(d.byTemplates); i++ {
		if d.byTemplates[i].stats.Templates > d.byTemplates[(i-1)/2].stats.Templates {
			return fmt.Errorf("heap order broken at %d", i)
		}
	}
	s := d.Summary()
	if s.NoTemplateSets != s.PendingSetsDecoded+s.PendingSetsExpired+s.PendingSetsEvicted+uint64(s.PendingSets) {
		return fmt.Errorf("summary: %d sets without template, %d decoded + %d expired + %d evicted + %d waiting",
			s.NoTemplateSets, s.PendingSetsDecoded, s.PendingSetsExpired, s.PendingSetsEvicted, s.PendingSets)
	}
	return nil
}
