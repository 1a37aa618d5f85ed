package ctk

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// network stands in for the internet the scenarios reach: each public host
// they name is served by a local test server, and a request to any other
// host fails as an unreachable one would.
type network struct {
	servers map[string]*httptest.Server // by host name
}

func newNetwork() *network {
	return &network{servers: map[string]*httptest.Server{
		"petstore.swagger.io": httptest.NewServer(newPetStore()),
		"httpbin.org":         httptest.NewServer(httpbin{}),
	}}
}

func (n *network) Close() {
	for _, s := range n.servers {
		s.Close()
	}
}

// client returns an HTTP client whose requests reach the stand-ins. The
// request keeps its Host header, so a handler sees the public name.
func (n *network) client() *http.Client {
	return &http.Client{Transport: n}
}

func (n *network) RoundTrip(req *http.Request) (*http.Response, error) {
	srv, ok := n.servers[req.URL.Hostname()]
	if !ok {
		return nil, fmt.Errorf("dial tcp: lookup %s: no such host in the test network", req.URL.Hostname())
	}
	target, err := url.Parse(srv.URL)
	if err != nil {
		return nil, err
	}
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host = target.Scheme, target.Host
	if out.Host == "" {
		out.Host = req.URL.Host
	}
	return srv.Client().Transport.RoundTrip(out)
}

// pet is the pet store's model (Swagger Petstore v2).
type pet struct {
	ID        int64       `json:"id"`
	Category  *namedItem  `json:"category,omitempty"`
	Name      string      `json:"name"`
	PhotoURLs []string    `json:"photoUrls"`
	Tags      []namedItem `json:"tags,omitempty"`
	Status    string      `json:"status,omitempty"`
}

type namedItem struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

type apiResponse struct {
	Code    int    `json:"code"`
	Type    string `json:"type"`
	Message string `json:"message"`
}

// petStore behaves like petstore.swagger.io/v2 for the pet operations:
// lookups by id (404 with the store's error document for unknown or
// malformed ids, and for paths it has no route for), findByStatus, add,
// update and delete.
type petStore struct {
	mu     sync.Mutex
	pets   map[int64]*pet
	nextID int64
}

func newPetStore() *petStore {
	s := &petStore{pets: map[int64]*pet{}, nextID: 100}
	for _, p := range []*pet{
		{ID: 1, Name: "doggie", Category: &namedItem{1, "Dogs"}, PhotoURLs: []string{"https://example.com/doggie.png"}, Status: "available"},
		{ID: 2, Name: "Milou", Category: &namedItem{1, "Dogs"}, PhotoURLs: []string{}, Status: "available"},
		{ID: 3, Name: "Garfield", Category: &namedItem{2, "Cats"}, PhotoURLs: []string{}, Status: "pending"},
		{ID: 4, Name: "Nemo", Category: &namedItem{3, "Fish"}, PhotoURLs: []string{}, Status: "sold"},
	} {
		s.pets[p.ID] = p
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *petStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/v2")
	if path == r.URL.Path {
		writeJSON(w, http.StatusNotFound, apiResponse{404, "unknown", "not found"})
		return
	}
	segments := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case path == "/swagger.json" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(petStoreSwagger))
	case path == "/pet/findByStatus" && r.Method == http.MethodGet:
		s.findByStatus(w, r)
	case path == "/pet" && (r.Method == http.MethodPost || r.Method == http.MethodPut):
		s.save(w, r)
	case len(segments) == 2 && segments[0] == "pet":
		s.byID(w, r, segments[1])
	default:
		writeJSON(w, http.StatusNotFound, apiResponse{404, "unknown", "HTTP 404 Not Found"})
	}
}

func (s *petStore) findByStatus(w http.ResponseWriter, r *http.Request) {
	wanted := map[string]bool{}
	for _, v := range r.URL.Query()["status"] {
		for _, st := range strings.Split(v, ",") {
			wanted[st] = true
		}
	}
	s.mu.Lock()
	found := []*pet{}
	for _, p := range s.pets {
		if wanted[p.Status] {
			found = append(found, p)
		}
	}
	s.mu.Unlock()
	sort.Slice(found, func(i, j int) bool { return found[i].ID < found[j].ID })
	writeJSON(w, http.StatusOK, found)
}

func (s *petStore) save(w http.ResponseWriter, r *http.Request) {
	var p pet
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		writeJSON(w, http.StatusBadRequest, apiResponse{400, "unknown", "bad input"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.ID == 0 {
		s.nextID++
		p.ID = s.nextID
	}
	if p.PhotoURLs == nil {
		p.PhotoURLs = []string{}
	}
	s.pets[p.ID] = &p
	writeJSON(w, http.StatusOK, &p)
}

func (s *petStore) byID(w http.ResponseWriter, r *http.Request, raw string) {
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		writeJSON(w, http.StatusNotFound, apiResponse{404, "unknown",
			fmt.Sprintf("java.lang.NumberFormatException: For input string: %q", raw)})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pets[id]
	switch {
	case !ok:
		writeJSON(w, http.StatusNotFound, apiResponse{1, "error", "Pet not found"})
	case r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, p)
	case r.Method == http.MethodDelete:
		delete(s.pets, id)
		writeJSON(w, http.StatusOK, apiResponse{200, "unknown", raw})
	default:
		writeJSON(w, http.StatusMethodNotAllowed, apiResponse{405, "unknown", "method not allowed"})
	}
}

// httpbin answers the httpbin.org endpoints the scenarios use.
type httpbin struct{}

func (httpbin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segments := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segments) == 3 && segments[0] == "basic-auth" && r.Method == http.MethodGet {
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(segments[1]+":"+segments[2]))
		if r.Header.Get("Authorization") != want {
			w.Header().Set("WWW-Authenticate", `Basic realm="Fake Realm"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"authenticated": true, "user": segments[1]})
		return
	}
	writeJSON(w, http.StatusNotFound, map[string]any{"error": "not found"})
}

// petStoreSwagger is the part of the pet store's Swagger 2.0 document that
// describes the pet operations.
const petStoreSwagger = `{
  "swagger": "2.0",
  "info": {"title": "Swagger Petstore", "version": "1.0.7"},
  "host": "petstore.swagger.io",
  "basePath": "/v2",
  "schemes": ["https", "http"],
  "paths": {
    "/pet": {
      "post": {"operationId": "addPet", "consumes": ["application/json"], "produces": ["application/json"],
        "parameters": [{"in": "body", "name": "body", "required": true, "schema": {"$ref": "#/definitions/Pet"}}],
        "responses": {"200": {"description": "successful operation"}, "405": {"description": "Invalid input"}}},
      "put": {"operationId": "updatePet", "consumes": ["application/json"], "produces": ["application/json"],
        "parameters": [{"in": "body", "name": "body", "required": true, "schema": {"$ref": "#/definitions/Pet"}}],
        "responses": {"200": {"description": "successful operation"}, "404": {"description": "Pet not found"}}}
    },
    "/pet/findByStatus": {
      "get": {"operationId": "findPetsByStatus", "produces": ["application/json"],
        "parameters": [{"name": "status", "in": "query", "required": true, "type": "array",
          "items": {"type": "string", "enum": ["available", "pending", "sold"]}, "collectionFormat": "multi"}],
        "responses": {"200": {"description": "successful operation",
          "schema": {"type": "array", "items": {"$ref": "#/definitions/Pet"}}}}}
    },
    "/pet/{petId}": {
      "get": {"operationId": "getPetById", "produces": ["application/json"],
        "parameters": [{"name": "petId", "in": "path", "required": true, "type": "integer", "format": "int64"}],
        "responses": {"200": {"description": "successful operation", "schema": {"$ref": "#/definitions/Pet"}},
          "404": {"description": "Pet not found"}}},
      "delete": {"operationId": "deletePet", "produces": ["application/json"],
        "parameters": [{"name": "api_key", "in": "header", "required": false, "type": "string"},
          {"name": "petId", "in": "path", "required": true, "type": "integer", "format": "int64"}],
        "responses": {"404": {"description": "Pet not found"}}}
    }
  },
  "definitions": {
    "Pet": {"type": "object", "required": ["name", "photoUrls"], "properties": {
      "id": {"type": "integer", "format": "int64"},
      "name": {"type": "string"},
      "photoUrls": {"type": "array", "items": {"type": "string"}},
      "status": {"type": "string", "enum": ["available", "pending", "sold"]}}}
  }
}`
