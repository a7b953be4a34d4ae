raise RuntimeError("boom on line 1")
