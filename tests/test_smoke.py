def test_it_serves_health(client):
    assert client.get("/health").json() == {"status": "ok"}
