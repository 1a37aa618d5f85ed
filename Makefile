# The one test command of the README. -race everywhere; the timeout keeps a
# hung test from eating CI's budget.
GO ?= go

.PHONY: test build bench fuzz console-screenshots

test:
	$(GO) test -race -timeout 15m ./...

build:
	$(GO) build -o baton ./cmd/baton

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./engine ./store/sqlite

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./dsl

# The screenshots of docs/console.md, taken by the console's browser test.
console-screenshots:
	BATON_CONSOLE_SCREENSHOTS=$(CURDIR)/docs/images $(GO) test -count=1 -run TestConsoleBrowser ./cmd/baton
