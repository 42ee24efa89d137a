-- Plan mix by month, and the most popular plan of each month (rank 1).
SELECT month,
       plan_type,
       customers,
       round(share, 4) AS share,
       rank() OVER (PARTITION BY month ORDER BY customers DESC) AS popularity_rank
FROM gold.kpi_plan_monthly
ORDER BY month, popularity_rank, plan_type
