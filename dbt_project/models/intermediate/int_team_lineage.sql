{#- Every team's lineage: the team whose history its races carry on, from the hand-curated
    `team_lineage` seed. A team sold or renamed is one team with a new name (Toro Rosso →
    AlphaTauri → RB), so its windows must not restart from nothing; the lineage is named after
    its founding team, reached by following predecessors back to a team that has none. A team
    the seed does not name keeps its own id.

    A reference can be a successor more than once (Renault 2002 and 2016, Sauber 2010 and 2024),
    so a seed row continues one stint of its predecessor: the predecessor's latest row starting
    no later than its own. An Ergast reference also spans unrelated teams decades apart (Renault's
    works team of 1977-1985 raced against Toleman, the Enstone lineage's founder), so a team's
    races count for its lineage only from `lineage_from_season`; before it they roll under the
    team's own id, as a team with no predecessor. -#}
with recursive

constructors as (
    select * from {{ ref('int_constructors') }}
),

links as (
    select * from {{ ref('team_lineage') }}
),

link_parents as (
    select
        links.constructor_ref,
        links.first_season,
        links.predecessor_ref,
        -- null: the predecessor has no row of its own here, so it founded the lineage
        max(predecessor_links.first_season) as predecessor_first_season
    from links
    left join links as predecessor_links
        on links.predecessor_ref = predecessor_links.constructor_ref
        and links.first_season >= predecessor_links.first_season
    group by links.constructor_ref, links.first_season, links.predecessor_ref
),

chain_walk as (
    select
        constructor_ref,
        first_season,
        predecessor_ref as ancestor_ref,
        predecessor_first_season as ancestor_first_season,
        1 as steps
    from link_parents
    union all
    select
        chain_walk.constructor_ref,
        chain_walk.first_season,
        link_parents.predecessor_ref as ancestor_ref,
        link_parents.predecessor_first_season as ancestor_first_season,
        chain_walk.steps + 1 as steps
    from chain_walk
    inner join link_parents
        on chain_walk.ancestor_ref = link_parents.constructor_ref
        and chain_walk.ancestor_first_season = link_parents.first_season
    -- a cycle in the seed never reaches a founder: no chain is longer than the seed, so stop
    -- there and let the unresolved row fail the not_null test on `lineage_id`
    where chain_walk.steps < (select count(*) from links)
),

link_founders as (
    select
        constructor_ref,
        first_season,
        ancestor_ref as founder_ref
    from chain_walk
    where ancestor_first_season is null
),

team_founders as (
    select
        links.constructor_ref,
        min(links.first_season) as first_linked_season,
        -- one team, one lineage: rows leading to different founders (or none) resolve to null
        case
            when count(link_founders.founder_ref) = count(*)
                and count(distinct link_founders.founder_ref) = 1
                then min(link_founders.founder_ref)
        end as founder_ref
    from links
    left join link_founders
        on links.constructor_ref = link_founders.constructor_ref
        and links.first_season = link_founders.first_season
    group by links.constructor_ref
),

lineage as (
    select
        constructors.constructor_id,
        constructors.constructor_ref,
        case
            when team_founders.constructor_ref is null then constructors.constructor_id
            else founders.constructor_id
        end as lineage_id,
        case
            when team_founders.constructor_ref is null then constructors.constructor_ref
            else founders.constructor_ref
        end as lineage_ref,
        -- a founder counts every race it ran for its lineage, whatever rows name it later
        case
            when founders.constructor_id <> constructors.constructor_id
                then team_founders.first_linked_season
        end as lineage_from_season
    from constructors
    left join team_founders on constructors.constructor_ref = team_founders.constructor_ref
    left join constructors as founders on team_founders.founder_ref = founders.constructor_ref
)

select * from lineage
