# The one test command of the README. -race everywhere; the timeout keeps a
# hung test from eating CI's budget. The deploy module (image builder, Helm
# chart test) is a module of its own, so that Helm and Kubernetes stay out
# of the main module's build; `make test` runs it too.
GO ?= go
GOARCH ?= $(shell $(GO) env GOARCH)
VERSION ?= $(shell sed -n 's/^var Version = "\(.*\)"/\1/p' engine/engine.go)
IMAGE ?= baton:$(VERSION)

.PHONY: test build bench fuzz image console-screenshots

test:
	$(GO) test -race -timeout 15m ./...
	cd deploy && $(GO) test -race -timeout 10m ./...

build:
	$(GO) build -o baton ./cmd/baton

# The container image, assembled in Go from the static binary and the CA
# certificates (no registry, no container runtime): dist/baton-image.tar for
# `podman load -i`, dist/oci for skopeo or crane. See docs/deploy.md.
# GOARCH=arm64 make image builds for another architecture; the builder
# itself runs on this machine's.
image:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) $(GO) build -trimpath -ldflags '-s -w' -o dist/baton-linux-$(GOARCH) ./cmd/baton
	cd deploy && GOOS= GOARCH= $(GO) run ./cmd/baton-image --binary ../dist/baton-linux-$(GOARCH) --tag $(IMAGE) --version $(VERSION) \
		--archive ../dist/baton-image.tar --oci-layout ../dist/oci

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./engine ./store/sqlite

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./dsl

# The screenshots of docs/console.md, taken by the console's browser test.
console-screenshots:
	BATON_CONSOLE_SCREENSHOTS=$(CURDIR)/docs/images $(GO) test -count=1 -run TestConsoleBrowser ./cmd/baton
