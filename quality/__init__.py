"""Data quality checks on the ad.rewards Parquet table, one ``dt=/hr=`` partition at a time.

Great Expectations runs the suite; pyarrow reads the files. Nothing here imports Flink, so the
checks run anywhere the table is readable (a laptop, a cron job, CI).
"""
