def pytest_configure(config):
    config.addinivalue_line("markers", "spacing: keeps the real 1.1 s token-request spacing")
