-- campaign_daily copied UTM values as the client sent them, so an e-mail address in a
-- campaign link (utm_campaign=spring-ann@example.org) lived in it for two years, while the
-- events it came from were scrubbed at 90 days. The rollup now scrubs them first
-- (live_campaigns); this scrubs the rows already stored, merging rows that become equal
-- (their distinct networks are added up: an upper bound for those few rows).
WITH changed AS (
    DELETE FROM public.campaign_daily
    WHERE waymark.scrub_text(campaign) IS DISTINCT FROM campaign
       OR waymark.scrub_text(source) IS DISTINCT FROM source
       OR waymark.scrub_text(medium) IS DISTINCT FROM medium
    RETURNING *
)
INSERT INTO public.campaign_daily AS c (day, campaign, source, medium, visits,
                                        unique_networks, conversions)
SELECT day, waymark.scrub_text(campaign), waymark.scrub_text(source),
       waymark.scrub_text(medium), sum(visits), sum(unique_networks), sum(conversions)
FROM changed
GROUP BY 1, 2, 3, 4
ON CONFLICT (day, campaign, source, medium) DO UPDATE
SET visits = c.visits + EXCLUDED.visits,
    unique_networks = c.unique_networks + EXCLUDED.unique_networks,
    conversions = c.conversions + EXCLUDED.conversions;
