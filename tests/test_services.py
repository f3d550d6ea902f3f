"""The external services the tests can use (see conftest.py): a PostgreSQL server and a local
Ray cluster, both on 127.0.0.1."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("run", [1, 2])  # the same table twice: each test gets a fresh database
def test_postgres_round_trip(pg_url, pg_storage_url, run):
    from sqlalchemy import Column, Float, Integer, MetaData, String, Table, create_engine, inspect, select, text

    assert pg_storage_url.startswith("postgresql+psycopg://")
    assert pg_storage_url != pg_url
    engine = create_engine(pg_storage_url)
    try:
        assert inspect(engine).get_table_names() == []
        meta = MetaData()
        points = Table("points", meta, Column("id", Integer, primary_key=True),
                       Column("name", String(20), nullable=False), Column("score", Float))
        with engine.begin() as conn:
            meta.create_all(conn)
            conn.execute(points.insert(), [{"name": "a", "score": 0.5}, {"name": f"run{run}", "score": 1.5}])
        with engine.connect() as conn:
            rows = conn.execute(select(points.c.name, points.c.score).order_by(points.c.id)).all()
            server = conn.execute(text("SELECT host(inet_server_addr()), current_database()")).one()
        assert [tuple(r) for r in rows] == [("a", 0.5), (f"run{run}", 1.5)]
        assert server[1] == pg_storage_url.rsplit("/", 1)[1]
        if "127.0.0.1" in pg_url:
            assert server[0] == "127.0.0.1"
    finally:
        engine.dispose()


def test_ray_remote_function(ray_address):
    ray = pytest.importorskip("ray")

    assert ray_address.startswith("127.0.0.1:")
    ray.init(address=ray_address, log_to_driver=False)
    try:
        @ray.remote
        def square(x):
            return x * x

        assert ray.get([square.remote(i) for i in range(6)]) == [0, 1, 4, 9, 16, 25]
        nodes = [n for n in ray.nodes() if n["Alive"]]
        assert [n["NodeManagerAddress"] for n in nodes] == ["127.0.0.1"]
        assert ray.cluster_resources()["CPU"] == 2
    finally:
        ray.shutdown()
