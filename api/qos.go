package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/batonflow/baton/auth"
	"github.com/batonflow/baton/qos"
)

// qosEngine is implemented by engines that schedule by QoS.
type qosEngine interface {
	QoSStatus() qos.Status
}

// earlyRefuser is implemented by engines that can refuse a start from
// its route and headers alone (engine.Engine.RefuseEarly): nil means it
// may go on, or that only the ordinary way can tell.
type earlyRefuser interface {
	RefuseEarly(ctx context.Context, namespace, name, version string) error
}

// Problem types of QoS rejections.
const (
	TypeQuotaExceeded    = "https://batonflow.dev/problems/quota-exceeded"
	TypeOverloaded       = "https://batonflow.dev/problems/overloaded"
	TypeDeadlineExceeded = "https://batonflow.dev/problems/deadline-exceeded"
)

// RejectionProblem is the problem document of a start refused by QoS
// admission: a problem with the reason, class and namespace, and the
// seconds of its Retry-After header.
type RejectionProblem struct {
	Type       string     `json:"type"`
	Status     int        `json:"status"`
	Title      string     `json:"title"`
	Detail     string     `json:"detail,omitempty"`
	Instance   string     `json:"instance,omitempty"`
	Reason     qos.Reason `json:"reason"`
	Class      string     `json:"class"`
	Namespace  string     `json:"namespace"`
	RetryAfter int        `json:"retryAfter"`
}

// withQoSRequest attaches the client's classification headers to the
// request's context, for the engine's G1; false when they are invalid
// (the problem is written).
func (s *server) withQoSRequest(w http.ResponseWriter, r *http.Request, namespace string) (*http.Request, bool) {
	req, err := qos.ParseHeaders(r.Header, time.Now())
	if err != nil {
		s.writeProblem(w, r, badRequest("%v", err))
		return r, false
	}
	// Raising a class above the document's takes the role that may edit
	// the document; a hook's namespace is only known later, so its callers
	// may only lower.
	req.MayRaise = namespace != "" && auth.PrincipalFrom(r.Context()).Can(auth.Developer, namespace)
	return r.WithContext(qos.WithRequest(r.Context(), req)), true
}

// writeRejection answers a start refused by admission control.
func (s *server) writeRejection(w http.ResponseWriter, r *http.Request, rej *qos.Rejection) {
	p := RejectionProblem{
		Status: rej.Status(), Detail: rej.Error(), Instance: r.URL.Path,
		Reason: rej.Reason, Class: rej.Class.String(), Namespace: rej.Namespace, RetryAfter: rej.RetryAfterSeconds(),
	}
	switch rej.Reason {
	case qos.ReasonQuota:
		p.Type, p.Title = TypeQuotaExceeded, "Quota Exceeded"
	case qos.ReasonDeadline:
		p.Type, p.Title = TypeDeadlineExceeded, "Deadline Exceeded"
	default:
		p.Type, p.Title = TypeOverloaded, "Overloaded"
	}
	data, _ := json.Marshal(p)
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Retry-After", strconv.Itoa(p.RetryAfter))
	h.Set(qos.HeaderClass, p.Class)
	h.Set(qos.HeaderFlow, p.Namespace)
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(data, '\n'))
}

// qosStatus answers GET /v1/qos: the gates' queues, seats and rejections.
func (s *server) qosStatus(w http.ResponseWriter, r *http.Request) {
	qe, ok := s.engine.(qosEngine)
	if !ok {
		writeJSON(w, http.StatusOK, qos.Status{})
		return
	}
	writeJSON(w, http.StatusOK, qe.QoSStatus())
}
