"""A keyring backend for tests: a JSON file named by TEST_KEYRING_FILE."""

import json
import os

from keyring.backend import KeyringBackend


class FileKeyring(KeyringBackend):
    priority = 1

    def _load(self):
        path = os.environ["TEST_KEYRING_FILE"]
        if os.path.exists(path):
            with open(path) as fh:
                return json.load(fh)
        return {}

    def _save(self, data):
        with open(os.environ["TEST_KEYRING_FILE"], "w") as fh:
            json.dump(data, fh)

    def get_password(self, service, username):
        return self._load().get(f"{service}\0{username}")

    def set_password(self, service, username, password):
        data = self._load()
        data[f"{service}\0{username}"] = password
        self._save(data)

    def delete_password(self, service, username):
        data = self._load()
        data.pop(f"{service}\0{username}", None)
        self._save(data)
