package policy

import (
	"fmt"
	"math"

	"github.com/batonflow/baton/qos"
)

// DefaultQoSClasses are the classes a namespace may use unless its policy
// says otherwise: every one but system, which is the server's own.
var DefaultQoSClasses = []qos.Class{qos.Critical, qos.Standard, qos.Batch}

func (q *QoS) validate() []string {
	var errs []string
	if w := q.Weight; w != nil && (*w < 0.001 || *w > 1000 || math.IsNaN(*w)) {
		errs = append(errs, "qos.weight must be between 0.001 and 1000")
	}
	if r := q.Rate; r != nil && (*r < 0 || math.IsNaN(*r) || math.IsInf(*r, 0)) {
		errs = append(errs, "qos.rate must be zero (no cap) or positive")
	}
	if b := q.Burst; b != nil && *b < 1 {
		errs = append(errs, "qos.burst must be positive")
	}
	if c := q.DefaultClass; c != nil {
		if _, err := qos.ParseClass(*c); err != nil {
			errs = append(errs, "qos.defaultClass: "+err.Error())
		}
	}
	for _, c := range q.Classes {
		if _, err := qos.ParseClass(c); err != nil {
			errs = append(errs, "qos.classes: "+err.Error())
		}
	}
	if q.DefaultClass != nil && len(q.Classes) > 0 {
		found := false
		for _, c := range q.Classes {
			a, _ := qos.ParseClass(c)
			d, _ := qos.ParseClass(*q.DefaultClass)
			found = found || a == d
		}
		if !found {
			errs = append(errs, fmt.Sprintf("qos.defaultClass %s is not among qos.classes", *q.DefaultClass))
		}
	}
	return errs
}

// resolveQoS merges a namespace's QoS settings over the server's.
func resolveQoS(ns, d *QoS) EffectiveQoS {
	e := EffectiveQoS{
		Weight: pick(ns.Weight, d.Weight, 1.0),
		Rate:   pick(ns.Rate, d.Rate, 0.0),
	}
	e.Burst = pick(ns.Burst, d.Burst, max(1, int(math.Ceil(e.Rate))))
	// Validated documents only reach here, so the names parse.
	e.DefaultClass, _ = qos.ParseClass(pick(ns.DefaultClass, d.DefaultClass, qos.Standard.String()))
	classes := ns.Classes
	if classes == nil {
		classes = d.Classes
	}
	for _, c := range classes {
		k, _ := qos.ParseClass(c)
		e.Classes = append(e.Classes, k)
	}
	if e.Classes == nil {
		e.Classes = DefaultQoSClasses
	}
	return e
}
