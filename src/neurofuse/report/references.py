"""The literature and software NeuroFuse's methods text cites.

Every entry was checked against a published copy of the work (journal page, PubMed,
DataCite/Crossref records cited by maintained projects): authors, year, title, venue and
DOI. Works without a DOI (JMLR, ICLR proceedings) carry their stable URL instead.
:mod:`neurofuse.report.methods` picks the entries a run used; nothing here is listed
by itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """One cited work. ``authors`` as "Surname Initials", in the published order."""

    key: str
    authors: tuple[str, ...]
    year: int
    title: str
    venue: str
    details: str = ""  # volume(issue):pages or article number
    doi: str | None = None
    url: str | None = None
    kind: str = "article"  # BibTeX entry type: article, inproceedings, misc
    more_authors: bool = False  # ``authors`` lists the first authors only

    @property
    def link(self) -> str:
        """The DOI resolver URL, else the work's URL."""
        if self.doi:
            return f"https://doi.org/{self.doi}"
        if self.url:
            return self.url
        raise ValueError(f"reference {self.key} has neither a DOI nor a URL")

    @property
    def label(self) -> str:
        """Author-year label used in the text: "Cox, 1996", "Köster & Rahmann, 2012", "Allen et al., 2000"."""
        surnames = [author.rsplit(" ", 1)[0] for author in self.authors]
        if len(surnames) == 1:
            who = surnames[0]
        elif len(surnames) == 2:
            who = f"{surnames[0]} & {surnames[1]}"
        else:
            who = f"{surnames[0]} et al."
        return f"{who}, {self.year}"

    def markdown(self) -> str:
        """One entry of the reference list (Vancouver-like, with the link)."""
        shown = self.authors[:6]
        names = ", ".join(shown) + (", et al." if self.more_authors or len(self.authors) > len(shown) else "")
        details = f" {self.details}" if self.details else ""
        target = f"doi:{self.doi}" if self.doi else self.link
        return f"{names} ({self.year}). {self.title}. *{self.venue}*{details}. [{target}]({self.link})"

    def bibtex(self) -> str:
        """A BibTeX entry keyed by :attr:`key`."""
        authors = " and ".join(_bibtex_author(a) for a in self.authors) + (" and others" if self.more_authors else "")
        venue_field = {"article": "journal", "inproceedings": "booktitle"}.get(self.kind, "howpublished")
        fields = [("author", authors), ("title", "{" + self.title + "}"), (venue_field, self.venue),
                  ("year", str(self.year))]
        if self.details:
            fields.append(("note", self.details))
        if self.doi:
            fields.append(("doi", self.doi))
        if self.url:
            fields.append(("url", self.url))
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
        return f"@{self.kind}{{{self.key},\n{body}\n}}"


def _bibtex_author(author: str) -> str:
    surname, _, initials = author.rpartition(" ")
    return f"{surname}, {' '.join(f'{c}.' for c in initials if c.isalpha())}" if surname else author


def _ref(key, authors, year, title, venue, details="", doi=None, url=None, kind="article") -> Reference:
    """A reference; an author list ending in "..." lists the first authors only."""
    more = authors[-1] == "..."
    return Reference(key, tuple(a for a in authors if a != "..."), year, title, venue, details, doi, url, kind, more)


_ALL = [
    # Data standard and workflow engine
    _ref("gorgolewski2016", ["Gorgolewski KJ", "Auer T", "Calhoun VD", "Craddock RC", "Das S", "Duff EP",
                             "Flandin G", "..."], 2016,
         "The brain imaging data structure, a format for organizing and describing outputs of neuroimaging experiments",
         "Scientific Data", "3:160044", doi="10.1038/sdata.2016.44"),
    _ref("pernet2019", ["Pernet CR", "Appelhoff S", "Gorgolewski KJ", "Flandin G", "Phillips C", "Delorme A",
                        "Oostenveld R"], 2019,
         "EEG-BIDS, an extension to the brain imaging data structure for electroencephalography",
         "Scientific Data", "6:103", doi="10.1038/s41597-019-0104-8"),
    _ref("koster2012", ["Köster J", "Rahmann S"], 2012, "Snakemake - a scalable bioinformatics workflow engine",
         "Bioinformatics", "28(19):2520-2522", doi="10.1093/bioinformatics/bts480"),
    _ref("molder2021", ["Mölder F", "Jablonski KP", "Letcher B", "Hall MB", "Tomkins-Tinch CH", "Sochat V",
                        "Forster J", "..."], 2021, "Sustainable data analysis with Snakemake",
         "F1000Research", "10:33", doi="10.12688/f1000research.29032.2"),
    _ref("harris2020", ["Harris CR", "Millman KJ", "van der Walt SJ", "Gommers R", "Virtanen P", "Cournapeau D",
                        "Wieser E", "..."], 2020, "Array programming with NumPy", "Nature", "585:357-362",
         doi="10.1038/s41586-020-2649-2"),
    _ref("virtanen2020", ["Virtanen P", "Gommers R", "Oliphant TE", "Haberland M", "Reddy T", "Cournapeau D",
                          "Burovski E", "..."], 2020, "SciPy 1.0: fundamental algorithms for scientific computing in Python",
         "Nature Methods", "17:261-272", doi="10.1038/s41592-019-0686-2"),
    # fMRI
    _ref("baker2004", ["Baker S", "Matthews I"], 2004, "Lucas-Kanade 20 years on: a unifying framework",
         "International Journal of Computer Vision", "56(3):221-255", doi="10.1023/B:VISI.0000011205.11775.fd"),
    _ref("jenkinson2002", ["Jenkinson M", "Bannister P", "Brady M", "Smith S"], 2002,
         "Improved optimization for the robust and accurate linear registration and motion correction of brain images",
         "NeuroImage", "17(2):825-841", doi="10.1006/nimg.2002.1132"),
    _ref("cox1996", ["Cox RW"], 1996,
         "AFNI: software for analysis and visualization of functional magnetic resonance neuroimages",
         "Computers and Biomedical Research", "29(3):162-173", doi="10.1006/cbmr.1996.0014"),
    _ref("gorgolewski2011", ["Gorgolewski K", "Burns CD", "Madison C", "Clark D", "Halchenko YO", "Waskom ML",
                             "Ghosh SS"], 2011,
         "Nipype: a flexible, lightweight and extensible neuroimaging data processing framework in Python",
         "Frontiers in Neuroinformatics", "5:13", doi="10.3389/fninf.2011.00013"),
    _ref("avants2008", ["Avants BB", "Epstein CL", "Grossman M", "Gee JC"], 2008,
         "Symmetric diffeomorphic image registration with cross-correlation: evaluating automated labeling of "
         "elderly and neurodegenerative brain", "Medical Image Analysis", "12(1):26-41",
         doi="10.1016/j.media.2007.06.004"),
    _ref("tustison2021", ["Tustison NJ", "Cook PA", "Holbrook AJ", "Johnson HJ", "Muschelli J", "Devenyi GA",
                          "..."], 2021, "The ANTsX ecosystem for quantitative biological and medical imaging",
         "Scientific Reports", "11:9068", doi="10.1038/s41598-021-87564-6"),
    _ref("fonov2009", ["Fonov VS", "Evans AC", "McKinstry RC", "Almli CR", "Collins DL"], 2009,
         "Unbiased nonlinear average age-appropriate brain templates from birth to adulthood",
         "NeuroImage", "47(Suppl 1):S102", doi="10.1016/S1053-8119(09)70884-5"),
    _ref("fonov2011", ["Fonov V", "Evans AC", "Botteron K", "Almli CR", "McKinstry RC", "Collins DL"], 2011,
         "Unbiased average age-appropriate atlases for pediatric studies", "NeuroImage", "54(1):313-327",
         doi="10.1016/j.neuroimage.2010.07.033"),
    _ref("friston1996", ["Friston KJ", "Williams S", "Howard R", "Frackowiak RS", "Turner R"], 1996,
         "Movement-related effects in fMRI time-series", "Magnetic Resonance in Medicine", "35(3):346-355",
         doi="10.1002/mrm.1910350312"),
    _ref("power2012", ["Power JD", "Barnes KA", "Snyder AZ", "Schlaggar BL", "Petersen SE"], 2012,
         "Spurious but systematic correlations in functional connectivity MRI networks arise from subject motion",
         "NeuroImage", "59(3):2142-2154", doi="10.1016/j.neuroimage.2011.10.018"),
    _ref("afyouni2018", ["Afyouni S", "Nichols TE"], 2018, "Insight and inference for DVARS", "NeuroImage",
         "172:291-312", doi="10.1016/j.neuroimage.2017.12.098"),
    _ref("abraham2014", ["Abraham A", "Pedregosa F", "Eickenberg M", "Gervais P", "Mueller A", "Kossaifi J",
                         "Gramfort A", "Thirion B", "Varoquaux G"], 2014, "Machine learning for neuroimaging with scikit-learn",
         "Frontiers in Neuroinformatics", "8:14", doi="10.3389/fninf.2014.00014"),
    # EEG
    _ref("gramfort2013", ["Gramfort A", "Luessi M", "Larson E", "Engemann DA", "Strohmeier D", "Brodbeck C",
                          "Goj R", "Jas M", "Brooks T", "Parkkonen L", "Hämäläinen M"], 2013, "MEG and EEG data analysis with MNE-Python", "Frontiers in Neuroscience",
         "7:267", doi="10.3389/fnins.2013.00267"),
    _ref("allen2000", ["Allen PJ", "Josephs O", "Turner R"], 2000,
         "A method for removing imaging artifact from continuous EEG recorded during functional MRI",
         "NeuroImage", "12(2):230-239", doi="10.1006/nimg.2000.0599"),
    _ref("allen1998", ["Allen PJ", "Polizzi G", "Krakow K", "Fish DR", "Lemieux L"], 1998,
         "Identification of EEG events in the MR scanner: the problem of pulse artifact and a method for its "
         "subtraction", "NeuroImage", "8(3):229-239", doi="10.1006/nimg.1998.0361"),
    _ref("niazy2005", ["Niazy RK", "Beckmann CF", "Iannetti GD", "Brady JM", "Smith SM"], 2005,
         "Removal of FMRI environment artifacts from EEG data using optimal basis sets", "NeuroImage",
         "28(3):720-737", doi="10.1016/j.neuroimage.2005.06.067"),
    _ref("bigdelyshamlo2015", ["Bigdely-Shamlo N", "Mullen T", "Kothe C", "Su KM", "Robbins KA"], 2015,
         "The PREP pipeline: standardized preprocessing for large-scale EEG analysis",
         "Frontiers in Neuroinformatics", "9:16", doi="10.3389/fninf.2015.00016"),
    _ref("perrin1989", ["Perrin F", "Pernier J", "Bertrand O", "Echallier JF"], 1989,
         "Spherical splines for scalp potential and current density mapping",
         "Electroencephalography and Clinical Neurophysiology", "72(2):184-187",
         doi="10.1016/0013-4694(89)90180-6"),
    _ref("ablin2018", ["Ablin P", "Cardoso JF", "Gramfort A"], 2018,
         "Faster independent component analysis by preconditioning with Hessian approximations",
         "IEEE Transactions on Signal Processing", "66(15):4040-4049", doi="10.1109/TSP.2018.2844203"),
    _ref("lee1999", ["Lee TW", "Girolami M", "Sejnowski TJ"], 1999,
         "Independent component analysis using an extended infomax algorithm for mixed subgaussian and "
         "supergaussian sources", "Neural Computation", "11(2):417-441", doi="10.1162/089976699300016719"),
    _ref("bell1995", ["Bell AJ", "Sejnowski TJ"], 1995,
         "An information-maximization approach to blind separation and blind deconvolution", "Neural Computation",
         "7(6):1129-1159", doi="10.1162/neco.1995.7.6.1129"),
    _ref("hyvarinen1999", ["Hyvärinen A"], 1999,
         "Fast and robust fixed-point algorithms for independent component analysis",
         "IEEE Transactions on Neural Networks", "10(3):626-634", doi="10.1109/72.761722"),
    _ref("piontonachini2019", ["Pion-Tonachini L", "Kreutz-Delgado K", "Makeig S"], 2019,
         "ICLabel: an automated electroencephalographic independent component classifier, dataset, and website",
         "NeuroImage", "198:181-197", doi="10.1016/j.neuroimage.2019.05.026"),
    _ref("li2022", ["Li A", "Feitelberg J", "Saini AP", "Höchenberger R", "Scheltienne M"], 2022,
         "MNE-ICALabel: automatically annotating ICA components with ICLabel in Python",
         "Journal of Open Source Software", "7(76):4484", doi="10.21105/joss.04484"),
    _ref("friston1998", ["Friston KJ", "Fletcher P", "Josephs O", "Holmes A", "Rugg MD", "Turner R"], 1998,
         "Event-related fMRI: characterizing differential responses", "NeuroImage", "7(1):30-40",
         doi="10.1006/nimg.1997.0306"),
    # Fusion
    _ref("goldman2002", ["Goldman RI", "Stern JM", "Engel J", "Cohen MS"], 2002,
         "Simultaneous EEG and fMRI of the alpha rhythm", "NeuroReport", "13(18):2487-2492",
         doi="10.1097/01.wnr.0000047685.08940.d0"),
    _ref("laufs2003", ["Laufs H", "Krakow K", "Sterzer P", "Eger E", "Beyerle A", "Salek-Haddadi A",
                       "Kleinschmidt A"], 2003,
         "Electroencephalographic signatures of attentional and cognitive default modes in spontaneous brain "
         "activity fluctuations at rest", "Proceedings of the National Academy of Sciences of the USA",
         "100(19):11053-11058", doi="10.1073/pnas.1831638100"),
    _ref("worsley2002", ["Worsley KJ", "Liao CH", "Aston J", "Petre V", "Duncan GH", "Morales F", "Evans AC"], 2002,
         "A general statistical analysis for fMRI data", "NeuroImage", "15(1):1-15",
         doi="10.1006/nimg.2001.0933"),
    _ref("benjamini1995", ["Benjamini Y", "Hochberg Y"], 1995,
         "Controlling the false discovery rate: a practical and powerful approach to multiple testing",
         "Journal of the Royal Statistical Society: Series B", "57(1):289-300",
         doi="10.1111/j.2517-6161.1995.tb02031.x"),
    _ref("pedregosa2011", ["Pedregosa F", "Varoquaux G", "Gramfort A", "Michel V", "Thirion B", "Grisel O",
                           "Blondel M", "..."], 2011, "Scikit-learn: machine learning in Python",
         "Journal of Machine Learning Research", "12:2825-2830",
         url="https://jmlr.org/papers/v12/pedregosa11a.html"),
    _ref("paszke2019", ["Paszke A", "Gross S", "Massa F", "Lerer A", "Bradbury J", "Chanan G", "Killeen T", "..."], 2019,
         "PyTorch: an imperative style, high-performance deep learning library",
         "Advances in Neural Information Processing Systems", "32:8024-8035 (arXiv:1912.01703)",
         doi="10.48550/arXiv.1912.01703", kind="inproceedings"),
    _ref("vaswani2017", ["Vaswani A", "Shazeer N", "Parmar N", "Uszkoreit J", "Jones L", "Gomez AN", "Kaiser L",
                         "Polosukhin I"], 2017, "Attention is all you need",
         "Advances in Neural Information Processing Systems", "30 (arXiv:1706.03762)",
         doi="10.48550/arXiv.1706.03762", kind="inproceedings"),
    _ref("vandenoord2018", ["van den Oord A", "Li Y", "Vinyals O"], 2018,
         "Representation learning with contrastive predictive coding", "arXiv", "1807.03748",
         doi="10.48550/arXiv.1807.03748", kind="misc"),
    _ref("radford2021", ["Radford A", "Kim JW", "Hallacy C", "Ramesh A", "Goh G", "Agarwal S", "Sastry G", "..."], 2021,
         "Learning transferable visual models from natural language supervision",
         "International Conference on Machine Learning (ICML)", "arXiv:2103.00020",
         doi="10.48550/arXiv.2103.00020", kind="inproceedings"),
    _ref("loshchilov2019", ["Loshchilov I", "Hutter F"], 2019, "Decoupled weight decay regularization",
         "International Conference on Learning Representations (ICLR)",
         url="https://openreview.net/forum?id=Bkg6RiCqY7", kind="inproceedings"),
]

#: Every reference NeuroFuse can cite, by key.
REFERENCES: dict[str, Reference] = {ref.key: ref for ref in _ALL}


def references_in(text: str) -> list[Reference]:
    """The references whose link appears in ``text`` (e.g. a written methods file), by key."""
    return [ref for key, ref in sorted(REFERENCES.items()) if ref.link in text]
