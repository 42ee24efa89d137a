-- Distinct customers and their average year of birth, by home country (current versions).
SELECT country,
       count(DISTINCT customer_key)          AS customers,
       round(avg(year(date_of_birth)), 1)    AS avg_birth_year
FROM gold.dim_customer
WHERE is_current AND customer_sk <> -1
GROUP BY country
ORDER BY customers DESC, country
