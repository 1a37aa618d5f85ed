package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// restrictFiles makes the database readable by its owner only: it creates
// the file 0600 before SQLite does (SQLite gives the -wal and -shm files
// the main file's mode), and narrows the mode of files an older version
// created 0644. The database holds workflow inputs and outputs, secrets
// (sealed) and token hashes: nothing another local user should read.
func restrictFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, info.Mode().Perm()&0o600); err != nil {
				return fmt.Errorf("restricting %s to its owner: %w", p, err)
			}
		}
	}
	return nil
}
