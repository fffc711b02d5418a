"""Hand-made "one more race" data folders built from the real Ergast tables.

A live season surprises a weekly tool in ways a frozen snapshot never does: the next race has no
qualifying yet (or has it), a new team arrives with two rookies, a team is renamed, the results
of the last race are published before its standings, a new finishing status appears, results of
a later race are published while an earlier one is still empty. Each scenario starts from the
real data cut after one race (by default 2025 round 17, so round 18 is "next"), changes the few
rows the scenario needs, and writes a folder the project's loader reads like any other source.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

NULL = r"\N"
# Tables whose rows belong to a race with results (and so vanish when the data is cut).
RACE_TABLES = (
    "results",
    "sprint_results",
    "qualifying",
    "driver_standings",
    "constructor_standings",
)
TABLES = ("circuits", "constructors", "drivers", "races", "status", *RACE_TABLES)


@dataclass
class SeasonData:
    """The Ergast tables in memory: rows as dicts of text, exactly as the CSVs hold them."""

    headers: dict[str, list[str]]
    rows: dict[str, list[dict[str, str]]]
    source: dict[str, list[dict[str, str]]] = field(repr=False)

    @classmethod
    def cut_after(cls, source: Path, year: int, round_: int) -> SeasonData:
        """The real data as it stood when (year, round_) was the last race with results."""
        headers: dict[str, list[str]] = {}
        rows: dict[str, list[dict[str, str]]] = {}
        for table in TABLES:
            with (source / f"{table}.csv").open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                headers[table] = list(reader.fieldnames or [])
                rows[table] = list(reader)
        original = {table: list(table_rows) for table, table_rows in rows.items()}
        later = {
            race["raceId"]
            for race in rows["races"]
            if (int(race["year"]), int(race["round"])) > (year, round_)
        }
        for table in RACE_TABLES:
            rows[table] = [row for row in rows[table] if row["raceId"] not in later]
        return cls(headers, rows, original)

    # -- the calendar ---------------------------------------------------------------------------
    def race(self, year: int, round_: int) -> dict[str, str]:
        [race] = [
            r for r in self.rows["races"] if (int(r["year"]), int(r["round"])) == (year, round_)
        ]
        return race

    def race_id(self, year: int, round_: int) -> int:
        return int(self.race(year, round_)["raceId"])

    def last_race_with_results(self) -> dict[str, str]:
        with_results = {row["raceId"] for row in self.rows["results"]}
        races = [r for r in self.rows["races"] if r["raceId"] in with_results]
        return max(races, key=lambda r: (int(r["year"]), int(r["round"])))

    def next_race(self) -> dict[str, str]:
        last = self.last_race_with_results()
        key = (int(last["year"]), int(last["round"]))
        later = [r for r in self.rows["races"] if (int(r["year"]), int(r["round"])) > key]
        return min(later, key=lambda r: (int(r["year"]), int(r["round"])))

    # -- publishing what the real data has ------------------------------------------------------
    def publish(self, table: str, race_id: int) -> list[dict[str, str]]:
        """Copy the real rows of `table` for one race back in (e.g. its qualifying)."""
        published = [row for row in self.source[table] if row["raceId"] == str(race_id)]
        if not published:
            raise ValueError(f"the real data has no {table} rows for race {race_id}")
        self.rows[table].extend(published)
        return published

    def unpublish(self, table: str, race_id: int) -> None:
        self.rows[table] = [row for row in self.rows[table] if row["raceId"] != str(race_id)]

    # -- new people, teams and values -----------------------------------------------------------
    def next_id(self, table: str, key: str) -> int:
        return max(int(row[key]) for row in self.rows[table]) + 1

    def add_constructor(self, ref: str, name: str, nationality: str = "British") -> int:
        constructor_id = self.next_id("constructors", "constructorId")
        self.rows["constructors"].append(
            {
                "constructorId": str(constructor_id),
                "constructorRef": ref,
                "name": name,
                "nationality": nationality,
                "url": NULL,  # a brand-new team has no Wikipedia page in the feed yet
            }
        )
        return constructor_id

    def add_driver(
        self, ref: str, forename: str, surname: str, dob: str, nationality: str = "British"
    ) -> int:
        driver_id = self.next_id("drivers", "driverId")
        self.rows["drivers"].append(
            {
                "driverId": str(driver_id),
                "driverRef": ref,
                "number": NULL,
                "code": NULL,
                "forename": forename,
                "surname": surname,
                "dob": dob,
                "nationality": nationality,
                "url": NULL,
            }
        )
        return driver_id

    def add_circuit(self, ref: str, name: str, location: str, country: str) -> int:
        circuit_id = self.next_id("circuits", "circuitId")
        self.rows["circuits"].append(
            {
                "circuitId": str(circuit_id),
                "circuitRef": ref,
                "name": name,
                "location": location,
                "country": country,
                # a circuit new to the calendar often has no coordinates or page in the feed yet
                "lat": NULL,
                "lng": NULL,
                "alt": NULL,
                "url": NULL,
            }
        )
        return circuit_id

    def rename_constructor(self, ref: str, name: str) -> None:
        [team] = [row for row in self.rows["constructors"] if row["constructorRef"] == ref]
        team["name"] = name

    def add_status(self, text: str) -> int:
        status_id = self.next_id("status", "statusId")
        self.rows["status"].append({"statusId": str(status_id), "status": text})
        return status_id

    def driver_id(self, ref: str) -> int:
        [driver] = [row for row in self.rows["drivers"] if row["driverRef"] == ref]
        return int(driver["driverId"])

    def constructor_id(self, ref: str) -> int:
        [team] = [row for row in self.rows["constructors"] if row["constructorRef"] == ref]
        return int(team["constructorId"])

    def add_qualifying(self, race_id: int, entries: list[tuple[int, int]]) -> None:
        """A qualifying classification for (driver_id, constructor_id) pairs, in order."""
        first_id = self.next_id("qualifying", "qualifyId")
        for position, (driver_id, constructor_id) in enumerate(entries, start=1):
            self.rows["qualifying"].append(
                {
                    "qualifyId": str(first_id + position - 1),
                    "raceId": str(race_id),
                    "driverId": str(driver_id),
                    "constructorId": str(constructor_id),
                    "number": str(position),
                    "position": str(position),
                    "q1": f"1:{30 + position // 10}.{(position % 10) * 100:03d}",
                    "q2": NULL,
                    "q3": NULL,
                }
            )

    # -- output -----------------------------------------------------------------------------------
    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for table in TABLES:
            with (folder / f"{table}.csv").open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=self.headers[table], lineterminator="\n")
                writer.writeheader()
                # Ergast's 2025 calendar rows stop after the url: absent session columns are null.
                writer.writerows(
                    {key: NULL if value is None else value for key, value in row.items()}
                    for row in self.rows[table]
                )
        return folder
