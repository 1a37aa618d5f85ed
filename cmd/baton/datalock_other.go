//go:build !unix

package main

import "os"

// tryLock has no implementation outside Unix systems: there the data
// directory is not protected against a second process (docs/storage.md).
func tryLock(*os.File) (bool, error) { return true, nil }
