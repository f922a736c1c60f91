"""Breadth of the shipped knowledge base (issue 19 point 5): counts, sources, the ONC high-priority
interaction classes, QT/CYP/serotonergic/CNS-depressant rules, and the age, pregnancy, renal and
hepatic contraindications, read straight from the loaded data."""

from __future__ import annotations

import pytest

from clinical_rlhf.knowledge import SEVERITY_RANK, load_knowledge
from clinical_rlhf.knowledge.model import CLASS_PREFIX

REJECTING = ("major", "contraindicated")


@pytest.fixture(scope="module")
def kb():
    return load_knowledge()


def _members(kb, side: str) -> tuple[str, ...]:
    if side.startswith(CLASS_PREFIX):
        return tuple(drug.name for drug in kb.drugs_in_class(side))
    return (side,) if kb.drug(side) is not None else ()


def test_at_least_500_drugs_carry_brand_names_and_every_fact_a_source(kb) -> None:
    assert sum(bool(drug.brands) for drug in kb.drugs) >= 500
    for record in (*kb.drugs, *kb.interactions, *kb.contraindications):
        assert len(record.source.split()) >= 2, record
    for rule in kb.interactions:
        assert _members(kb, rule.a) and _members(kb, rule.b), rule.id  # no rule over an empty class


@pytest.mark.parametrize("area_drugs", [
    ("paracetamol", "naproxen", "co-codamol", "dihydrocodeine"),                         # analgesics
    ("amoxicillin", "cefalexin", "pivmecillinam", "fosfomycin", "tinidazole"),           # antibiotics
    ("oseltamivir", "baloxavir", "famciclovir", "dolutegravir"),                         # antivirals
    ("fluconazole", "terbinafine", "clotrimazole", "nystatin"),                          # antifungals
    ("bisoprolol", "nebivolol", "ivabradine", "ranolazine", "aliskiren"),                # cardiovascular
    ("metformin", "tirzepatide", "linagliptin", "acarbose"),                             # diabetes
    ("vortioxetine", "lurasidone", "moclobemide", "suvorexant"),                         # psychiatric
    ("lacosamide", "oxcarbazepine", "brivaracetam", "phenobarbital"),                    # antiepileptics
    ("salmeterol", "tiotropium", "fluticasone salmeterol", "roflumilast"),               # respiratory
    ("rabeprazole", "mebeverine", "mesalazine", "macrogol"),                             # GI
    ("carbimazole", "hydrocortisone", "desmopressin", "testosterone"),                   # endocrine
    ("levonorgestrel", "desogestrel", "ulipristal", "estradiol", "medroxyprogesterone"),  # contraception, HRT
    ("tamoxifen", "capecitabine", "imatinib", "anastrozole"),                            # oncology basics
    ("levocetirizine", "oxymetazoline", "dimenhydrinate", "bismuth subsalicylate"),      # OTC cold, allergy
    ("st johns wort", "ginkgo biloba", "kava", "valerian", "melatonin"),                 # herbals, supplements
    ("alcohol", "cannabis", "mdma", "cocaine"),                                          # recreational
])
def test_each_area_people_ask_about_is_covered(kb, area_drugs: tuple[str, ...]) -> None:
    assert [name for name in area_drugs if kb.drug(name) is None] == []


@pytest.mark.parametrize(("written", "generic"), [
    ("Mounjaro", "tirzepatide"), ("Champix", "varenicline"), ("Chantix", "varenicline"),
    ("Lamisil", "terbinafine"), ("Canesten", "clotrimazole"), ("Buscopan", "hyoscine butylbromide"),
    ("Gaviscon", "sodium alginate"), ("Movicol", "macrogol"), ("MiraLAX", "macrogol"), ("Xyzal", "levocetirizine"),
    ("Kaletra", "lopinavir ritonavir"), ("Depo-Provera", "medroxyprogesterone"), ("ellaOne", "ulipristal"),
    ("ecstasy", "mdma"), ("heroin", "diamorphine"), ("Pepto-Bismol", "bismuth subsalicylate"),
    ("dothiepin", "dosulepin"), ("Roaccutane", "isotretinoin"),
])
def test_new_brands_and_synonyms_resolve(kb, written: str, generic: str) -> None:
    assert kb.drug(written).name == generic


# The 15 high-priority interaction classes of Phansalkar et al. (JAMIA 2012;19:735-43), each as one
# pair of members that must meet a rule at major severity or above.
ONC_CLASSES = {
    "atazanavir + proton pump inhibitors": ("atazanavir", "omeprazole"),
    "bosentan + glyburide": ("bosentan", "glibenclamide"),
    "ergot alkaloids + CYP3A4 inhibitors": ("ergotamine", "clarithromycin"),
    "HMG-CoA reductase inhibitors + protease inhibitors": ("simvastatin", "atazanavir"),
    "HMG-CoA reductase inhibitors + CYP3A4 inhibitors": ("lovastatin", "itraconazole"),
    "irinotecan + CYP3A4 inducers": ("irinotecan", "phenytoin"),
    "MAO inhibitors + narcotic analgesics": ("phenelzine", "oxycodone"),
    "MAO inhibitors + SSRIs, SNRIs and TCAs": ("tranylcypromine", "sertraline"),
    "MAO inhibitors + sympathomimetics": ("phenelzine", "pseudoephedrine"),
    "MAO inhibitors + triptans": ("isocarboxazid", "sumatriptan"),
    "methotrexate + trimethoprim": ("methotrexate", "co-trimoxazole"),
    "nitrates + PDE5 inhibitors": ("isosorbide mononitrate", "tadalafil"),
    "QT-prolonging agents + QT-prolonging agents": ("citalopram", "ondansetron"),
    "ramelteon + fluvoxamine": ("ramelteon", "fluvoxamine"),
    "tizanidine + CYP1A2 inhibitors": ("tizanidine", "ciprofloxacin"),
    "thioridazine + CYP2D6 inhibitors": ("thioridazine", "paroxetine"),
}


@pytest.mark.parametrize("onc_class", sorted(ONC_CLASSES))
def test_every_onc_high_priority_class_is_a_rejecting_rule(kb, onc_class: str) -> None:
    first, second = ONC_CLASSES[onc_class]
    rule = kb.interaction(first, second)
    assert rule is not None and rule.severity in REJECTING, (onc_class, rule)


def test_class_rules_reach_the_drugs_added_to_a_class(kb) -> None:
    """A rule written once for a class covers each member, new ones included."""
    for first, second in [("saquinavir", "simvastatin"), ("darunavir", "lovastatin"), ("moclobemide", "venlafaxine"),
                          ("safinamide", "tramadol"), ("phentermine", "phenelzine"), ("vardenafil", "amyl nitrite"),
                          ("sulpiride", "hydroxyzine"), ("pentamidine", "methadone"), ("roxithromycin", "quinidine")]:
        rule = kb.interaction(first, second)
        assert rule is not None and rule.severity in REJECTING, (first, second)


def test_known_risk_qt_drugs_are_many_and_combine_as_major(kb) -> None:
    qt = {drug.name for drug in kb.drugs_in_class("qt_prolonging")}
    assert len(qt) >= 35
    assert {"quinidine", "disopyramide", "procainamide", "ibutilide", "cilostazol", "anagrelide",
            "arsenic trioxide", "vandetanib", "cocaine", "oxaliplatin"} <= qt


@pytest.mark.parametrize(("substrate", "modulator", "severity"), [
    ("simvastatin", "clarithromycin", "contraindicated"), ("colchicine", "ketoconazole", "major"),
    ("pimozide", "voriconazole", "contraindicated"), ("triazolam", "itraconazole", "contraindicated"),
    ("ivabradine", "clarithromycin", "contraindicated"), ("lurasidone", "rifampicin", "contraindicated"),
    ("ranolazine", "carbamazepine", "contraindicated"), ("fluticasone", "ritonavir", "major"),
    ("apixaban", "st johns wort", "major"), ("tacrolimus", "st johns wort", "major"),
    ("desogestrel", "carbamazepine", "major"), ("ethinylestradiol", "modafinil", "major"),
    ("tamoxifen", "paroxetine", "major"), ("codeine", "fluoxetine", "moderate"),
    ("thioridazine", "bupropion", "contraindicated"), ("simvastatin", "grapefruit juice", "major"),
])
def test_cyp_inhibitors_and_inducers_against_sensitive_substrates(kb, substrate, modulator, severity) -> None:
    rule = kb.interaction(substrate, modulator)
    assert rule is not None and SEVERITY_RANK[rule.severity] >= SEVERITY_RANK[severity], (substrate, modulator, rule)


@pytest.mark.parametrize(("first", "second"), [
    ("phenelzine", "fluoxetine"), ("linezolid", "sertraline"), ("methylthioninium chloride", "citalopram"),
    ("tramadol", "escitalopram"), ("sertraline", "venlafaxine"), ("fluoxetine", "paroxetine"),
    ("st johns wort", "sertraline"), ("st johns wort", "duloxetine"), ("mdma", "citalopram"),
    ("moclobemide", "pethidine"), ("selegiline", "dextromethorphan"), ("tryptophan", "phenelzine"),
])
def test_serotonin_syndrome_level_pairs_are_major_or_worse(kb, first: str, second: str) -> None:
    rule = kb.interaction(first, second)
    assert rule is not None and rule.severity in REJECTING, (first, second, rule)


@pytest.mark.parametrize(("first", "second"), [
    ("oxycodone", "diazepam"), ("morphine", "pregabalin"), ("codeine", "alcohol"), ("alprazolam", "alcohol"),
    ("zolpidem", "alcohol"), ("gabapentin", "alcohol"), ("methadone", "phenobarbital"),
    ("tramadol", "carisoprodol"), ("sodium oxybate", "alcohol"), ("disulfiram", "alcohol"),
])
def test_cns_depressant_combinations_reject(kb, first: str, second: str) -> None:
    rule = kb.interaction(first, second)
    assert rule is not None and rule.severity in REJECTING, (first, second, rule)


def _rules(kb, drug: str, *, max_age: float | None = None, term: str | None = None):
    return [rule for rule in kb.contraindications_for(drug)
            if (max_age is None or rule.max_age_years == max_age)
            and (term is None or term in rule.condition_terms)]


@pytest.mark.parametrize(("drug", "max_age"), [
    ("codeine", 12), ("co-codamol", 12), ("tramadol", 12), ("aspirin", 16), ("doxycycline", 8), ("minocycline", 8),
    ("benzocaine", 2), ("metoclopramide", 1), ("domperidone", 12), ("diphenoxylate atropine", 6),
    ("promethazine", 2), ("brompheniramine", 2), ("bismuth subsalicylate", 12),
])
def test_age_contraindications(kb, drug: str, max_age: float) -> None:
    assert _rules(kb, drug, max_age=max_age), drug


@pytest.mark.parametrize("drug", [
    "isotretinoin", "sodium valproate", "warfarin", "lisinopril", "ramipril", "losartan", "candesartan",
    "methotrexate", "atorvastatin", "simvastatin", "doxycycline", "acitretin", "mycophenolate mofetil",
    "leflunomide", "thalidomide", "lenalidomide", "aliskiren", "ribavirin", "topiramate", "finasteride",
])
def test_pregnancy_contraindications_apply_to_a_plain_i_am_pregnant(kb, drug: str) -> None:
    """Each applies in every trimester, so "I'm pregnant" or "I'm expecting" with no weeks stated
    is enough; the rule rejects (major or contraindicated)."""
    rules = [rule for rule in _rules(kb, drug, term="pregnant") if "im expecting" in rule.condition_terms]
    assert rules and all(rule.severity in REJECTING for rule in rules), drug


def test_nsaids_are_contraindicated_only_from_20_weeks(kb) -> None:
    rules = [rule for rule in kb.contraindications_for("ibuprofen") if "pregnant" in rule.condition_terms]
    assert rules == []
    late = _rules(kb, "naproxen", term="20 weeks pregnant")
    assert late and "19 weeks pregnant" not in late[0].condition_terms


@pytest.mark.parametrize(("drug", "term"), [
    ("metformin", "egfr 25"), ("nitrofurantoin", "ckd"), ("ibuprofen", "kidney failure"), ("dabigatran", "crcl 20"),
    ("spironolactone", "on dialysis"), ("methotrexate", "stage 5 ckd"), ("alendronic acid", "end stage renal"),
    ("lithium", "kidney disease"),
])
def test_renal_contraindications(kb, drug: str, term: str) -> None:
    assert [rule for rule in _rules(kb, drug, term=term) if rule.severity in REJECTING], drug


@pytest.mark.parametrize("drug", [
    "methotrexate", "ketoconazole", "sodium valproate", "leflunomide", "isoniazid", "kava", "atorvastatin",
    "bosentan", "agomelatine",
])
def test_hepatic_contraindications(kb, drug: str) -> None:
    assert [rule for rule in _rules(kb, drug, term="cirrhosis") if rule.severity in REJECTING], drug
