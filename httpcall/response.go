package httpcall

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/batonflow/baton/problem"
)

const (
	// errorSnippetBytes is how much of an error response's body goes into
	// the problem's detail: enough for a service's error message, not
	// enough to flood the history.
	errorSnippetBytes = 512
	// drainBytes is how much of an unread body is consumed before closing
	// it, so that the connection can go back to the keep-alive pool.
	drainBytes = 64 << 10
)

const redacted = "[redacted]"

// readBody reads the whole response body, up to the client's limit.
func (c *Client) readBody(ctx context.Context, call *call, resp *http.Response) ([]byte, *problem.Problem) {
	limit := c.maxResponseBytes()
	target := call.method + " " + call.url.Redacted()
	if resp.ContentLength > limit {
		return nil, problem.Communication(http.StatusBadGateway, "%s: the response body of %d bytes exceeds the limit of %d bytes", target, resp.ContentLength, limit)
	}
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, problem.Timeout("%s: the response body did not arrive before the task's deadline", target)
		}
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, problem.Communication(500, "%s: the call was cancelled while reading the response", target)
		}
		return nil, problem.Communication(http.StatusServiceUnavailable, "%s: reading the response failed: %v", target, err)
	}
	if n > limit {
		return nil, problem.Communication(http.StatusBadGateway, "%s: the response body exceeds the limit of %d bytes", target, limit)
	}
	return buf.Bytes(), nil
}

// statusProblem turns a refused status into a communication error whose
// status is the response's and whose detail starts the body, where services
// put their own explanation.
func statusProblem(call *call, resp *http.Response) *problem.Problem {
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, errorSnippetBytes+1))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBytes))

	title := http.StatusText(resp.StatusCode)
	if title == "" {
		title = fmt.Sprintf("HTTP Status %d", resp.StatusCode)
	}
	var detail strings.Builder
	fmt.Fprintf(&detail, "%s %s returned %s", call.method, call.url.Redacted(), resp.Status)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		if loc := resp.Header.Get("Location"); loc != "" {
			fmt.Fprintf(&detail, " (Location: %s)", loc)
		}
		detail.WriteString("; redirects are followed only with redirect: true")
	}
	if text := summarize(snippet, errorSnippetBytes); text != "" {
		detail.WriteString(": ")
		detail.WriteString(text)
	}
	return problem.New(problem.TypeCommunication, resp.StatusCode, title, detail.String())
}

// summarize makes a body fit on one line of an error message: whitespace
// runs collapse, cut at max bytes on a rune boundary, binary bodies omitted.
func summarize(body []byte, max int) string {
	truncated := len(body) > max
	if truncated {
		body = body[:max]
		for len(body) > 0 && !utf8.Valid(body) {
			body = body[:len(body)-1]
		}
	}
	if !utf8.Valid(body) {
		return fmt.Sprintf("(%d bytes of binary content)", len(body))
	}
	text := strings.Join(strings.Fields(string(body)), " ")
	if truncated && text != "" {
		text += "…"
	}
	return text
}

// shapeOutput builds the task's output in the requested mode.
func shapeOutput(call *call, resp *http.Response, body []byte) any {
	switch call.output {
	case OutputRaw:
		if len(body) == 0 {
			return nil
		}
		return base64.StdEncoding.EncodeToString(body)
	case OutputResponse:
		sent := resp.Request
		return map[string]any{
			"request": map[string]any{
				"method":  strings.ToLower(sent.Method),
				"uri":     redactWith(call.redact, sent.URL.Redacted()),
				"headers": redactHeaders(call.redact, headerMap(sent.Header, true)),
			},
			"statusCode": resp.StatusCode,
			"headers":    headerMap(resp.Header, false),
			"content":    decodeContent(resp.Header.Get("Content-Type"), body),
		}
	default:
		return decodeContent(resp.Header.Get("Content-Type"), body)
	}
}

// headerMap flattens headers to name → value, joining repeated fields with
// ", " as RFC 9110 allows. Credentials are masked so that they do not end up
// in the invocation's history.
func headerMap(h http.Header, maskCredentials bool) map[string]any {
	out := make(map[string]any, len(h))
	for name, values := range h {
		if maskCredentials && (name == "Authorization" || name == "Proxy-Authorization") {
			out[name] = redacted
			continue
		}
		out[name] = strings.Join(values, ", ")
	}
	return out
}

// redactHeaders masks secret values in the request headers that the
// response echoes: a workflow that sends an API key in a header of its own
// choosing must not find it in its history.
func redactHeaders(redact func(string) string, headers map[string]any) map[string]any {
	if redact == nil {
		return headers
	}
	for name, v := range headers {
		if s, ok := v.(string); ok {
			headers[name] = redact(s)
		}
	}
	return headers
}

// decodeContent turns a response body into output data: JSON media types
// (and untyped bodies that parse as JSON) are decoded, text is a string, and
// binary content is base64-encoded as the spec's HTTP Response asks.
func decodeContent(contentType string, body []byte) any {
	if len(body) == 0 {
		return nil
	}
	mt := mediaTypeOf(contentType)
	switch {
	case mt == "" || isJSONMediaType(mt):
		var v any
		if err := json.Unmarshal(body, &v); err == nil {
			return v
		}
		return textOrBase64(body)
	case isTextMediaType(mt):
		return textOrBase64(body)
	default:
		return base64.StdEncoding.EncodeToString(body)
	}
}

func textOrBase64(body []byte) any {
	if utf8.Valid(body) {
		return string(body)
	}
	return base64.StdEncoding.EncodeToString(body)
}

func isTextMediaType(mt string) bool {
	if strings.HasPrefix(mt, "text/") || strings.HasSuffix(mt, "+xml") || strings.HasSuffix(mt, "+yaml") {
		return true
	}
	switch mt {
	case "application/xml", "application/javascript", "application/ecmascript",
		"application/x-www-form-urlencoded", "application/yaml", "application/x-yaml",
		"application/graphql", "application/x-ndjson", "application/jsonl", "application/sql",
		"application/csv":
		return true
	}
	return false
}
