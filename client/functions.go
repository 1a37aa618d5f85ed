package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/function"
)

// DeployFunction deploys a process or http function, or a wasm function
// whose Artifact is the sha256: address of a module the server has.
func (c *Client) DeployFunction(ctx context.Context, spec function.Spec) (*api.FunctionRef, error) {
	body, err := json.Marshal(&spec)
	if err != nil {
		return nil, fmt.Errorf("encoding the function spec: %w", err)
	}
	var ref api.FunctionRef
	if _, err := c.do(ctx, request{
		method: http.MethodPost, segments: []string{"v1", "functions"}, query: c.namespaceQuery(nil),
		body: body, contentType: "application/json",
	}, &ref); err != nil {
		return nil, err
	}
	return &ref, nil
}

// DeployModule deploys a wasm function: spec (without Artifact) and the
// module read from the file at path, uploaded together.
func (c *Client) DeployModule(ctx context.Context, spec function.Spec, path string) (*api.FunctionRef, error) {
	specJSON, err := json.Marshal(&spec)
	if err != nil {
		return nil, fmt.Errorf("encoding the function spec: %w", err)
	}
	module, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the module: %w", err)
	}
	defer module.Close()

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	specHeader := textproto.MIMEHeader{}
	specHeader.Set("Content-Disposition", `form-data; name="`+api.FunctionSpecPart+`"`)
	specHeader.Set("Content-Type", "application/json")
	specPart, err := mw.CreatePart(specHeader)
	if err == nil {
		_, err = specPart.Write(specJSON)
	}
	if err != nil {
		return nil, fmt.Errorf("encoding the deploy request: %w", err)
	}
	modulePart, err := mw.CreateFormFile(api.FunctionModulePart, filepath.Base(path))
	if err != nil {
		return nil, fmt.Errorf("encoding the deploy request: %w", err)
	}
	if _, err := io.Copy(modulePart, module); err != nil {
		return nil, fmt.Errorf("reading the module: %w", err)
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("encoding the deploy request: %w", err)
	}
	var ref api.FunctionRef
	if _, err := c.do(ctx, request{
		method: http.MethodPost, segments: []string{"v1", "functions"}, query: c.namespaceQuery(nil),
		body: body.Bytes(), contentType: mw.FormDataContentType(),
	}, &ref); err != nil {
		return nil, err
	}
	return &ref, nil
}

// ListFunctions returns every function deployed in the client's namespace
// (WithNamespace; "default" when unset) with its versions.
func (c *Client) ListFunctions(ctx context.Context) ([]api.FunctionSummary, error) {
	var list api.FunctionList
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: []string{"v1", "functions"}, query: c.namespaceQuery(nil)}, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

func functionSegments(name, version string) []string {
	s := []string{"v1", "functions", name}
	if version != "" {
		s = append(s, "versions", version)
	}
	return s
}

// GetFunction returns a function version (the newest when version is "")
// with its versions and the state of its pool on the server.
func (c *Client) GetFunction(ctx context.Context, name, version string) (*api.Function, error) {
	var fn api.Function
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: functionSegments(name, version), query: c.namespaceQuery(nil)}, &fn); err != nil {
		return nil, err
	}
	return &fn, nil
}

// DeleteFunction deletes a function version, every version when version is
// "".
func (c *Client) DeleteFunction(ctx context.Context, name, version string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, segments: functionSegments(name, version), query: c.namespaceQuery(nil)}, nil)
	return err
}

// InvokeFunction calls a function (its newest version when version is "")
// with input, nil for a null input, and returns its output with how the
// call ran (cold start, duration, instance). A function's failure is a
// *problem.Problem of a Serverless Workflow error type.
func (c *Client) InvokeFunction(ctx context.Context, name, version string, input json.RawMessage) (*api.FunctionResult, error) {
	query := url.Values{}
	if version != "" {
		query.Set("version", version)
	}
	if input == nil {
		input = json.RawMessage("null")
	}
	var res api.FunctionResult
	if _, err := c.do(ctx, request{
		method: http.MethodPost, segments: []string{"v1", "functions", name, "invoke"}, query: c.namespaceQuery(query),
		body: input, contentType: "application/json",
	}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
